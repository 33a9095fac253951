"""A toy backend with a file format of its own, in one file, as another package would write it.

``keras_h5``: tf-keras running the model from a legacy HDF5 file (``.h5``), a format no built-in
backend runs. This one module is all it takes: it defines the format, registers how the modes it
supports make their file in that format (here float32 alone; every other mode is then a skip
that says so), and registers the backend, whose loader reads such files. No mode and no other
file of the harness names it.
"""

from __future__ import annotations

from pathlib import Path

from bench import formats
from bench.backends import BACKENDS, Backend
from bench.backends.keras import KerasRunner
from bench.errors import ArtifactError
from bench.formats import Export

FORMAT = formats.define("h5", ".h5", "a tf-keras model in the legacy HDF5 format", home="keras_h5")


def to_h5(ctx, path: Path) -> None:
    """The trained float32 model, graph and weights, as one HDF5 file."""
    from bench.tfsetup import keras

    copy = keras.Model.from_config(ctx.float_model.get_config())  # uncompiled: no optimizer state
    copy.set_weights(ctx.float_model.get_weights())
    copy.save(str(path), save_format="h5")


formats.register("float32", "h5", Export(to_h5))
formats.unsupported("int8_per_tensor", "h5", "an HDF5 Keras file holds float graphs; int8 kernels are LiteRT's")


def load(path: Path, threads: int | None = None) -> KerasRunner:
    from bench.tfsetup import keras

    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        raise ArtifactError(f"{path} is not a loadable HDF5 Keras model ({type(exc).__name__}); delete it "
                            "so it is rebuilt") from exc
    return KerasRunner(model)


SPEC = BACKENDS.register("keras_h5", Backend(
    name="keras_h5",
    description="toy backend of the plugin-API test: tf-keras on a legacy HDF5 file",
    load=load,
    formats=(FORMAT.name,),
    packages=("tensorflow", "tf-keras", "h5py"),
    untimed="a toy backend: timed cases are out of the plugin-API test's scope",
))
