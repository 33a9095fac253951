"""Saving a Keras model as a real file, so its size on disk is measured like any artifact."""

from __future__ import annotations

from pathlib import Path


def _uncompiled_copy(model):
    """The same graph and weights, never compiled.

    A model just trained in this process carries its optimizer and compile configuration, one
    loaded from the cache does not; saving either as it is made the file's size depend on whether
    training ran in this process (measured: 156,406 vs 149,072 bytes for the smoke cnn).
    """
    from bench.tfsetup import keras

    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def save(model, path: Path) -> None:
    """Saves graph and weights in the Keras v3 format (``path`` must end in ``.keras``).

    Not HDF5: tfmot's wrappers give several weights the same name, which HDF5 refuses. Written
    straight to ``path``: exporters write into the cache's staging folder, which only becomes the
    entry once everything in it is complete.
    """
    _uncompiled_copy(model).save(str(path))
