"""The run's record: what the run measured and decided, published as results.json.

The record owns the results document's shape: tests and the run add to it through these
methods, and :meth:`RunRecord.document` is the one place that writes the document's fields.
"""

from __future__ import annotations

import datetime as dt

from bench.case_record import CaseRecord
from bench.results import RESULTS_SCHEMA, sort_cases


class RunRecord:
    """Cases, timings, agreement, layer errors and run-level measurements of one run.

    Args:
        tier: The tier's name.
        command: The command line that started the run (recorded in the document).
        environment: The run's environment fingerprint.
        environment_id: Its short id (cases name the environment they were measured in).
    """

    def __init__(self, tier: str, command: str, environment: dict, environment_id: str) -> None:
        self.tier = tier
        self.command = command
        self.environment = environment
        self.environment_id = environment_id
        self.cases: dict[str, CaseRecord] = {}
        self.agreements: dict[str, dict] = {}
        self.layer_errors: dict[str, list[dict]] = {}
        self.timings: dict[str, dict] = {}
        self.harness: dict[str, object] = {}
        self.portability: dict[str, list[dict]] = {}
        self.failures: list[str] = []
        self.not_run: dict[str, dict] = {}
        self.run_info: dict[str, object] = {}

    def add_case(self, record: CaseRecord) -> None:
        """A judged case (made by :meth:`bench.run.BenchRun.run_case`)."""
        self.cases[record.id] = record

    def add_not_run(self, entry: dict) -> None:
        """A case of the selection that did not run: ``{"id", "reason", "kind", "in_baseline",
        "fails"}`` (made by :meth:`bench.run.BenchRun.not_run`)."""
        self.not_run[entry["id"]] = entry

    def add_agreement(self, model: str, mode: str, record: dict) -> None:
        self.agreements[f"{model}-{mode}"] = record

    def add_portability(self, model: str, rows: list[dict]) -> None:
        """Which of ``model``'s integer ONNX files run on which other ONNX runtime (see
        :func:`bench.portability.rows`)."""
        self.portability[model] = rows

    def add_layer_errors(self, case_id: str, rows: list[dict]) -> None:
        """Per-layer quantization error of a case: ``[{"layer", "snr_db", "rel_error"}, ...]``."""
        self.layer_errors[case_id] = rows

    def add_timing(self, case_id: str, **fields: object) -> None:
        """Timing fields of a case (latency_ms_b1, throughput_ips, speedup_vs_float, ...)."""
        self.timings.setdefault(case_id, {}).update(fields)

    def add_harness(self, name: str, value: object) -> None:
        """A run-level measurement that belongs to no case (harness overhead, speed checks)."""
        self.harness[name] = value

    def add_harness_item(self, name: str, key: str, value: object) -> None:
        """One item of a run-level table (``harness[name][key] = value``)."""
        self.harness.setdefault(name, {})[key] = value

    def set_run_info(self, **fields: object) -> None:
        """Run-level facts written at the top of the document (testbed, the baseline judged against)."""
        self.run_info.update(fields)

    def add_failures(self, messages: list[str]) -> None:
        """Failures of cross-case gates (agreement, speed, QAT against PTQ), shown in the summary."""
        self.failures.extend(messages)

    def document(self, dataset_sha256: str | None, n_test: int | None, models: dict,
                 lost_images: dict | None, seconds: dict[str, dict] | None = None) -> dict:
        """The results document (schema :data:`bench.results.RESULTS_SCHEMA`) of the run so far.

        Args:
            dataset_sha256: The data set's hash (None when no case loaded it).
            n_test: Test images per case.
            models: Per-model summary (parameters, training time, cached).
            lost_images: The worst int8 case's lost images (see :func:`bench.lost_images.lost_images`).
            seconds: Conversion and evaluation seconds per case id, this run's.
        """
        seconds = seconds or {}
        return {
            "schema": RESULTS_SCHEMA,
            "tier": self.tier,
            "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "command": self.command,
            **self.run_info,
            "environment": self.environment,
            "environments": {self.environment_id: self.environment},
            "dataset_sha256": dataset_sha256,
            "n_test": n_test,
            "models": models,
            "cases": sort_cases(
                {**record.as_dict(), **seconds.get(cid, {}), **self.timings.get(cid, {})}
                for cid, record in self.cases.items()
            ),
            "not_run": sort_cases(self.not_run.values()),
            "harness": self.harness,
            "agreement": [self.agreements[k] for k in sorted(self.agreements)],
            "layer_errors": {k: self.layer_errors[k] for k in sorted(self.layer_errors)},
            "portability": [row for model in sorted(self.portability) for row in self.portability[model]],
            "lost_images": lost_images,
        }
