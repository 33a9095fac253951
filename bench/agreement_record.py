"""What backend agreement found for one model and mode: typed records, and their results.json rows.

Made by :meth:`bench.run.BenchRun.agreement` from the logits, and by the merge of shards
(:func:`bench.merge.agreement_from_predictions`) from the per-image predictions; judged by
:func:`bench.gates.agreement_checks`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PairAgreement:
    """Two backends running one model and mode on the same test images.

    Attributes:
        backends: The two backends, in the run's backend order.
        top1_agreement: Share of images both predict the same class for.
        max_abs_logit_diff: Largest absolute difference of any logit (None: not known, as at the
            merge of shards, which keeps predictions, not logits).
        floor: The smallest accepted agreement (``bench.run.pair_floor``; None: recorded, not
            gated).
    """

    backends: list[str]
    top1_agreement: float
    max_abs_logit_diff: float | None
    floor: float | None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class AgreementRecord:
    """Every pair of backends that ran one model and mode, with what each measured alone.

    Attributes:
        model: The model.
        mode: The mode.
        pairs: One entry per pair of backends.
        accuracy: Backend -> its accuracy.
        size_bytes: Backend -> the size of the file it ran.
        failures: The agreement gate's failure messages (set when judged).
        computed_at: ``merge`` where the merge of shards computed it (None: the run itself).
        logit_check: Why the logit tolerance was not checked, where it could not be (None: it was,
            or it does not apply).
    """

    model: str
    mode: str
    pairs: list[PairAgreement]
    accuracy: dict[str, float]
    size_bytes: dict[str, int]
    failures: list[str] = dataclasses.field(default_factory=list)
    computed_at: str | None = None
    logit_check: str | None = None

    def as_dict(self) -> dict:
        """The results.json row (``computed_at`` and ``logit_check`` only where set)."""
        row = {"model": self.model, "mode": self.mode, "pairs": [pair.as_dict() for pair in self.pairs],
               "accuracy": self.accuracy, "size_bytes": self.size_bytes, "failures": self.failures}
        for optional in ("computed_at", "logit_check"):
            if getattr(self, optional) is not None:
                row[optional] = getattr(self, optional)
        return row
