"""The results document of a run: the record's fields with what the builder knows of the run.

:meth:`bench.record.RunRecord.document` owns the document's shape; this adds the run-level facts
that only the builder holds (the data set, the models, the lost-images gallery) and the seconds
per case that the run's :class:`bench.timings.Timings` measured while the builder worked.
:meth:`bench.run.BenchRun.document` calls it for the run's publishing (:mod:`bench.publish`).
"""

from __future__ import annotations

from bench import lost_images
from bench.build import Builder
from bench.provenance import WeightsRecord
from bench.record import RunRecord
from bench.timings import Timings


def results_document(record: RunRecord, build: Builder, weights: WeightsRecord, timings: Timings) -> dict:
    """The results document (results.json) of the cases run so far.

    Args:
        record: The run's record.
        build: The run's builder.
        weights: The provenance of the run's trained weights.
        timings: Seconds each case's file took to convert and to evaluate.
    """
    return record.document(
        dataset_sha256=build.dataset.sha256 if build.has_data() else None,
        n_test=int(len(build.splits.y_test)) if build.has_data() else None,
        models=weights.added_to(build.models_summary()),
        lost_images=lost_images.lost_images(build, record.cases.values()) if build.has_data() else None,
        seconds=timings.by_case(),
    )
