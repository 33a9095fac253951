"""Saving a Keras model as a real file, so its size on disk is measured like any artifact."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def save(model, path: Path) -> None:
    """Saves graph and weights in the Keras v3 format, atomically.

    Not HDF5: tfmot's wrappers give several weights the same name, which HDF5 refuses.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".keras")
    os.close(fd)
    try:
        # Without the optimizer: its state would triple the file, and a model loaded from the
        # cache has none, so sizes would depend on whether training ran in this process.
        optimizer = getattr(model, "optimizer", None)
        model.optimizer = None
        try:
            model.save(tmp)
        finally:
            model.optimizer = optimizer
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
