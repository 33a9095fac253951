"""One judged case: what :meth:`bench.run.BenchRun.run_case` measured and decided.

The record is typed so that the harness reads its fields by name; :meth:`CaseRecord.as_dict` is
its results.json form (a row of ``cases``), whose keys and their order are the field order below.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CaseRecord:
    """A case's measurements, its verdict against the baseline, and its gates' failures.

    Attributes:
        id: The case id (``model-mode-backend``).
        model, mode, backend: The case.
        accuracy: Top-1 accuracy on the tier's test images.
        float_accuracy: The float32 case's on the same backend.
        accuracy_drop_pp: Paired drop against float32, in percentage points.
        drop_ci95_pp: Its 95 % confidence interval, ``[low, high]``.
        mcnemar_p: McNemar's p for the drop.
        images_lost, images_gained: Images float32 got right and this case wrong, and the reverse.
        size_bytes, float_size_bytes: The artifact's size, and the float32 artifact's.
        size_ratio: ``float_size_bytes / size_bytes``.
        params: The model's parameter count.
        n_test: Test images.
        recipe_hash: The case definition's hash (a changed one is a cause beside the verdict).
        int8_format: The backend's integer format for the mode on this testbed, or None.
        artifact_sha256: The artifact's bytes' hash.
        eval_batch: The batch the case was evaluated at.
        batch_invariance: The batch-invariance measurement, with ``depends_on_batch``.
        correct_bits: Per-image correctness, packed (:func:`bench.evidence.pack`).
        predictions: Per-image predictions, packed.
        environment: The id of the environment the case was measured in.
        baseline_verdict: The verdict against the baseline entry, or ``no_baseline``.
        baseline_comparison: The verdict's details (:meth:`bench.stats.Verdict.as_dict`), or None.
        status: ``passed`` or ``failed``.
        failures: The failure messages of its gates.
    """

    id: str
    model: str
    mode: str
    backend: str
    accuracy: float
    float_accuracy: float
    accuracy_drop_pp: float
    drop_ci95_pp: list[float]
    mcnemar_p: float
    images_lost: int
    images_gained: int
    size_bytes: int
    float_size_bytes: int
    size_ratio: float
    params: int
    n_test: int
    recipe_hash: str
    int8_format: str | None
    artifact_sha256: str
    eval_batch: int
    batch_invariance: dict
    correct_bits: str
    predictions: str
    environment: str
    # Set when the case is judged (BenchRun.run_case); the gates read the measurements first.
    baseline_verdict: str | None = None
    baseline_comparison: dict | None = None
    status: str | None = None
    failures: list[str] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        """The results.json row: every field, in field order (values shared, not copied)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
