"""The lost-images gallery: the images the run's worst int8 case got wrong where float32 was right.

Worst: the largest drop against float32 on the same backend. The pixels (28x28 uint8, base64)
travel in results.json, so the report draws them without the data set
(:func:`bench.report.plots.plot_lost_images`); a merge of shards takes the gallery of the shard
that ran that case (``bench.merge``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import numpy as np

from bench.build import Builder
from bench.case_record import CaseRecord
from bench.modes import MODES, REFERENCE_MODE
from bench.results import case_id

# Lost images of the worst int8 case drawn in the report (a 4x4 grid).
LOST_IMAGES_SHOWN = 16


def lost_images(build: Builder, cases: Iterable[CaseRecord]) -> dict | None:
    """The worst int8 case's lost images, as results.json's ``lost_images``; None when no int8 case
    lost any.

    Args:
        build: The run's builder (its logits and test images).
        cases: The cases the run judged.
    """
    int8 = [r for r in cases if MODES.get(r.mode).integer and r.images_lost]
    if not int8:
        return None
    worst = max(int8, key=lambda r: (r.accuracy_drop_pp, r.id))
    model, mode, backend = worst.model, worst.mode, worst.backend
    labels = build.splits.y_test
    predicted = np.argmax(build.logits(model, mode, backend), axis=1)
    float_predicted = np.argmax(build.logits(model, REFERENCE_MODE, backend), axis=1)
    lost = np.flatnonzero((float_predicted == labels) & (predicted != labels))[:LOST_IMAGES_SHOWN]
    return {
        "case": worst.id,
        "float_case": case_id(model, REFERENCE_MODE, backend),
        "images_lost": worst.images_lost,
        "images": [
            {"position": int(i), "label": int(labels[i]), "predicted": int(predicted[i]),
             "float_predicted": int(float_predicted[i]),
             "pixels": _base64_pixels(build.splits.x_test[i])}
            for i in lost
        ],
    }


def _base64_pixels(image: np.ndarray) -> str:
    return base64.b64encode(image.astype(np.uint8).tobytes()).decode("ascii")
