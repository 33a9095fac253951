"""Deterministic training and QAT fine-tuning, cached by content and resumable by epoch.

A trained model is a cache entry keyed by the model's source, the tier's recipe and splits, the
data set's hash, the library versions and the code on the training path (:data:`TRAINING_SOURCES`);
a second run loads it and says so. While training, a
checkpoint is written after every epoch; an interrupted run resumes from the last one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench import atomic
from bench.cache import Cache, code_hash, definitions_of, key_of, log
from bench.data import NUM_CLASSES, ModelInputs
from bench.environment import library_versions
from bench.models import MODELS, ModelSpec
from bench.tiers import TRAINING_THREADS, QatRecipe, Tier, TrainRecipe

WEIGHTS = "weights.h5"
# QAT models in TensorFlow's checkpoint format: tfmot's wrappers repeat weight names, which HDF5
# refuses.
QAT_WEIGHTS = "weights.ckpt"
# Largest shift of the augmentation, in pixels: Fashion-MNIST items are centred with a 2-4 px
# margin, so 2 px moves them without cutting them.
MAX_SHIFT = 2


@dataclasses.dataclass
class Trained:
    """A trained model and what is known about how it came to be."""

    model: object
    key: str
    cached: bool
    seconds: float
    val_accuracy: float | None


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random shifts of up to MAX_SHIFT pixels and horizontal flips (uint8 in, uint8 out)."""
    n = len(images)
    padded = np.pad(images, ((0, 0), (MAX_SHIFT, MAX_SHIFT), (MAX_SHIFT, MAX_SHIFT)))
    dy = rng.integers(0, 2 * MAX_SHIFT + 1, n)
    dx = rng.integers(0, 2 * MAX_SHIFT + 1, n)
    rows = dy[:, None] + np.arange(images.shape[1])[None, :]
    cols = dx[:, None] + np.arange(images.shape[2])[None, :]
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def architecture_hash(spec: ModelSpec, seed: int) -> str:
    """Hash of the model's Keras config and its module's code, not its spec's data (per-tier recipes)."""
    module = inspect.getmodule(spec.build)
    return key_of([build_model(spec, seed).to_json(), code_hash(module, definitions_of(module))])


# The code that decides a trained model's weights, as (module, definitions; none: all of it),
# besides the model's own code (architecture_hash). Its recipe is hashed as data, per tier
# (Tier.recipe_hash), not as its file's code: editing the full recipe must not retrain smoke models.
TRAINING_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bench", ()),  # selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow loads
    ("bench.train", ()),  # the loop, augmentation, schedules, precision, QAT
    ("bench.data", ()),  # the splits and the model input
    ("bench.tfsetup", ()),  # seeding
    # Only the builder's members that hand training its data: the rest of build.py converts and
    # evaluates, and hashing all of it would retrain every model (full vgg16: hours) for a
    # conversion edit. Artifact keys hash the whole module.
    ("bench.build", ("Builder.dataset", "Builder.splits", "Builder.model_inputs", "Builder.trained",
                     "Builder.qat")),
)


def training_code_hash() -> str:
    """Hash of :data:`TRAINING_SOURCES` as this checkout has them (modules looked up by name)."""
    return key_of([[name, code_hash(importlib.import_module(name), only)] for name, only in TRAINING_SOURCES])


def float_key(spec: ModelSpec, tier: Tier, data_sha256: str) -> str:
    """The cache key of a float model: everything its weights depend on."""
    return key_of(
        {
            "model": spec.name,
            "architecture": architecture_hash(spec, tier.seed),
            "recipe": tier.recipe_hash(spec.name),
            "data": data_sha256,
            "versions": library_versions(),
            "code": training_code_hash(),
        }
    )


def _learning_rate(recipe: TrainRecipe, steps_per_epoch: int):
    from bench.tfsetup import keras

    if recipe.schedule == "constant":
        return recipe.learning_rate
    if recipe.schedule != "cosine":
        raise ValueError(f"unknown schedule {recipe.schedule!r}; use 'constant' or 'cosine'")
    warmup = recipe.warmup_epochs * steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.learning_rate if not warmup else 0.0,
        decay_steps=max(1, total - warmup),
        warmup_target=recipe.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def _compile(model, learning_rate, label_smoothing: float) -> None:
    from bench.tfsetup import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


class _Checkpoint:
    """Per-epoch training state in a folder: weights, optimizer state, epoch number."""

    def __init__(self, folder: Path, model) -> None:
        from bench.tfsetup import tf

        self.folder = folder
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)

    def restore(self) -> int:
        """Restores the last completed epoch's state; returns how many epochs are done."""
        state = self.folder / "state.json"
        if not state.is_file():
            return 0
        try:
            done = json.loads(state.read_text())["epochs_done"]
            self.ckpt.read(str(self.folder / "ckpt" / "state")).expect_partial()
        except Exception as exc:  # a damaged checkpoint only costs the epochs it held
            log(f"[train] ignoring unreadable checkpoint in {self.folder} ({exc}); starting over")
            return 0
        return int(done)

    def save(self, epochs_done: int) -> None:
        with atomic.staging_dir(self.folder / "ckpt") as staging:
            self.ckpt.write(str(staging / "state"))
        atomic.write_json(self.folder / "state.json", {"epochs_done": epochs_done})


def _with_float32_logits(model):
    """``model`` with its logits cast to float32, so that softmax and loss run in float32.

    Keras' mixed-precision advice: the loss of bfloat16 logits loses precision. The wrapper
    shares ``model``'s layers, so training it trains them.
    """
    from bench.tfsetup import keras

    logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(model.outputs[0])
    return keras.Model(model.inputs, logits, name=f"{model.name}_float32_logits")


def _fit(model, recipe: TrainRecipe, inputs: ModelInputs, seed: int, tag: str,
         checkpoint_dir: Path | None) -> float | None:
    from bench.tfsetup import seed_everything

    if model.compute_dtype != "float32":
        model = _with_float32_logits(model)
    y_val = _one_hot(inputs.splits.y_val)
    x_train_u8 = inputs.splits.x_train[: recipe.train_size]  # uint8, to augment (None: all of them)
    y_train = inputs.splits.y_train[: len(x_train_u8)]
    steps = int(np.ceil(len(x_train_u8) / recipe.batch_size))
    _compile(model, _learning_rate(recipe, steps), recipe.label_smoothing)
    checkpoint = _Checkpoint(checkpoint_dir, model) if checkpoint_dir else None
    start = checkpoint.restore() if checkpoint else 0
    if start:
        log(f"[train] {tag}: resuming after epoch {start}/{recipe.epochs} from {checkpoint_dir}")
    val_acc = None
    for epoch in range(start, recipe.epochs):
        began = time.perf_counter()
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it.
        seed_everything(seed + epoch)
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x_train_u8))
        # Augmentation moves uint8 pixels, so its new images are converted each epoch; without it
        # the epoch is the once-converted images shuffled (the same bits, see ModelInputs).
        images = (inputs.convert(augment(x_train_u8[order], rng)) if recipe.augment
                  else inputs.train(len(x_train_u8))[order])
        history = model.fit(
            images, _one_hot(y_train[order]),
            batch_size=recipe.batch_size, epochs=1, shuffle=False, verbose=0,
        )
        _, val_acc = model.evaluate(inputs.x_val, y_val, batch_size=512, verbose=0)
        if checkpoint:
            checkpoint.save(epoch + 1)
        log(
            f"[train] {tag}: epoch {epoch + 1}/{recipe.epochs} {time.perf_counter() - began:.1f}s "
            f"loss {history.history['loss'][-1]:.4f} acc {history.history['accuracy'][-1]:.4f} "
            f"val_acc {val_acc:.4f}"
        )
    return float(val_acc) if val_acc is not None else None


PRECISIONS = ("float32", "mixed_bfloat16")


def _check_threads(recipe: TrainRecipe, label: str) -> None:
    """Refuses to train on another thread count than the recipe's (the weights would differ)."""
    from bench.tfsetup import training_threads

    if training_threads() != recipe.threads:
        raise ValueError(
            f"{label}: the recipe trains on {recipe.threads} threads but TensorFlow was started with "
            f"{training_threads()}; TensorFlow's thread pools are fixed at start, so every recipe of a "
            f"run must use bench.tiers.TRAINING_THREADS ({TRAINING_THREADS})")


@contextlib.contextmanager
def _precision(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``name`` for the block, float32 again after it.

    ``mixed_bfloat16`` computes in bfloat16 and keeps weights and optimizer state in float32:
    measured 1.85x faster VGG16 training steps on this AVX-512 BF16 CPU (oneDNN kernels).
    """
    from bench.tfsetup import keras

    if name not in PRECISIONS:
        raise ValueError(f"unknown training precision {name!r}; use one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _float32_twin(model, spec: ModelSpec, seed: int):
    """``model`` itself if it computes in float32, else a float32 build holding its weights.

    A mixed-precision model carries bfloat16 casts in its graph, which the converters would
    export; its variables are float32, so the twin holds exactly the trained weights.
    """
    if model.compute_dtype == "float32":
        return model
    twin = build_model(spec, seed)
    twin.set_weights(model.get_weights())
    return twin


def build_model(spec: ModelSpec, seed: int):
    from bench.tfsetup import seed_everything

    seed_everything(seed)
    return spec.build()


def float_model(name: str, tier: Tier, inputs: ModelInputs, data_sha256: str, cache: Cache) -> Trained:
    """Returns the tier's trained float model, from the cache or trained now, from ``inputs``:
    the tier's splits in the model's input shape, converted once per shape by the caller."""
    spec = MODELS.get(name)
    key = float_key(spec, tier, data_sha256)
    label = f"{name}-{tier.name}"
    checkpoints = cache.entry_dir("checkpoints", label, key)
    began = time.perf_counter()
    result: dict = {}

    def train(folder: Path) -> dict:
        recipe = tier.train_recipe(name)
        _check_threads(recipe, label)
        with _precision(recipe.precision):
            trainee = build_model(spec, tier.seed)
            log(f"[train] {label}: training {trainee.count_params():,} parameters "
                f"({recipe}); checkpoints in {checkpoints}")
            val = _fit(trainee, recipe, inputs, tier.seed, label, checkpoints)
        model = _float32_twin(trainee, spec, tier.seed)
        model.save_weights(str(folder / WEIGHTS))
        result["model"] = model
        return {"val_accuracy": val, "train_seconds": time.perf_counter() - began}

    entry, cached = cache.get_or_build("models", label, key, train)
    shutil.rmtree(checkpoints, ignore_errors=True)
    meta = cache.read_meta(entry)
    if cached:
        model = build_model(spec, tier.seed)
        model.load_weights(str(entry / WEIGHTS))
        log(f"[train] {label}: reusing cached weights from {entry} "
            f"(trained in {meta.get('train_seconds', 0):.0f}s)")
    else:
        model = result["model"]
    return Trained(model, key, cached, float(meta.get("train_seconds", 0.0)), meta.get("val_accuracy"))


def _freeze_batchnorm(qat_model) -> None:
    """Freezes BatchNorm statistics: QAT must refine a converged model, not re-estimate it."""
    from bench.tfsetup import keras

    for layer in qat_model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.BatchNormalization):
            layer.trainable = False


# tfmot 0.8.1's MovingAverageQuantizer hard-codes this EMA decay for activation ranges.
TFMOT_EMA_DECAY = 0.999
# Forward passes that set the activation ranges: each pass sees its upstream layers' ranges from
# the pass before, so the second settles the chain; the third is a margin.
RANGE_PASSES = 3


def _activation_range_variables(qat_model) -> list:
    """tfmot's EMA range variables (layer outputs, post-activations).

    Not the weights' ranges (``*kernel_min``: LastValueQuantizer, set from the weights at every
    step) nor the model input's (``quantize_layer``: AllValuesQuantizer, a running min/max).
    """
    return [
        v for v in qat_model.variables
        if v.name.rsplit("/", 1)[-1].split(":")[0].endswith(("_min", "_max"))
        and "kernel" not in v.name and "quantize_layer" not in v.name
    ]


def initialize_qat_ranges(qat_model, images: np.ndarray) -> None:
    """Sets every activation range to what the calibration images produce, before fine-tuning.

    tfmot starts each activation range at [-6, 6] and moves it by an EMA of decay 0.999: after the
    ~60 steps of a smoke QAT epoch the ranges are still ~95 % the initial guess, and even after
    1,000 steps ~37 % of it, so a post-ReLU range keeps a large negative half and wastes half of
    the int8 codes (measured: zero point 123 of 255 after the smoke fine-tune). One training-mode
    pass on a batch updates v to ``d*v + (1-d)*b``; solving for the batch range ``b`` and
    assigning it gives the range the EMA would converge to, at once.
    """
    variables = _activation_range_variables(qat_model)
    for _ in range(RANGE_PASSES):
        before = [v.numpy() for v in variables]
        qat_model(images, training=True)
        for variable, old in zip(variables, before, strict=True):
            variable.assign((variable.numpy() - TFMOT_EMA_DECAY * old) / (1 - TFMOT_EMA_DECAY))


def quantize_aware(model):
    """Wraps a float model for QAT with tfmot's default 8-bit scheme (per-channel weights)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_model(model)


def qat_key(float_model_key: str, tier: Tier, name: str) -> str:
    """The cache key of a QAT model: its float model, the QAT recipe and the QAT procedure.

    The procedure lives in this module, which :func:`training_code_hash` covers.
    """
    return key_of({"float": float_model_key, "qat": tier.qat_hash(name), "code": training_code_hash()})


def qat_model(name: str, tier: Tier, inputs: ModelInputs, trained: Trained, cache: Cache) -> Trained:
    """Fine-tunes the cached float model with QAT on ``inputs`` (see :func:`float_model`); cached alike."""
    recipe: QatRecipe = tier.qat_recipe(name)
    key = qat_key(trained.key, tier, name)
    label = f"{name}-{tier.name}-qat"
    began = time.perf_counter()
    result: dict = {}

    def make():
        from bench.tfsetup import seed_everything

        seed_everything(tier.seed)
        return quantize_aware(trained.model)

    def train(folder: Path) -> dict:
        model = make()
        _freeze_batchnorm(model)
        initialize_qat_ranges(model, inputs.x_calib)
        fine_tune = TrainRecipe(
            epochs=recipe.epochs, batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
            schedule="constant", train_size=recipe.train_size,
        )
        log(f"[train] {label}: QAT fine-tuning from the float model ({recipe})")
        val = _fit(model, fine_tune, inputs, tier.seed + 7, label, None)
        model.save_weights(str(folder / QAT_WEIGHTS))
        result["model"] = model
        return {"val_accuracy": val, "train_seconds": time.perf_counter() - began}

    entry, cached = cache.get_or_build("models", label, key, train)
    meta = cache.read_meta(entry)
    if cached:
        model = make()
        model.load_weights(str(entry / QAT_WEIGHTS)).expect_partial()
        log(f"[train] {label}: reusing cached QAT weights from {entry}")
    else:
        model = result["model"]
    return Trained(model, key, cached, float(meta.get("train_seconds", 0.0)), meta.get("val_accuracy"))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that training stops the way Ctrl-C stops it.

    A KeyboardInterrupt subclass: whatever already cleans up after Ctrl-C (the cache's staging
    folders, ``finally`` blocks, libraries) does the same for SIGTERM, and ``except Exception``
    (as around checkpoint restoring) does not swallow it.
    """


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """Within the block, SIGINT raises KeyboardInterrupt and SIGTERM raises :class:`Terminated`.

    CPython installs its KeyboardInterrupt handler only if SIGINT is not ignored at start-up, and
    a background start (``nohup ... &``, some CI runners) ignores it; SIGTERM's default action kills
    the process without unwinding. Either way training would not stop cleanly. The previous
    handlers come back afterwards, for in-process callers of :func:`main`.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # None: a handler not set from Python; the default is the closest we can restore.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.train --tier full [--models a,b] [--tf-log]``: fills the cache with trained models.

    Trains each selected model's float and QAT weights, in order, each landing in the cache as soon
    as it is done; an interrupted run (SIGINT or SIGTERM) resumes from the last epoch's checkpoint.
    The bench then only converts and evaluates.

    Returns:
        The exit status: 0 when done, 1 on a BenchError, 128 + the signal's number when
        interrupted (130 for SIGINT, 143 for SIGTERM).
    """
    import argparse
    import signal
    import sys

    from bench import data as data_mod
    from bench import progress
    from bench.errors import BenchError
    from bench.tiers import get_tier

    parser = argparse.ArgumentParser(prog="python -m bench.train", description=main.__doc__)
    parser.add_argument("--tier", default="smoke")
    parser.add_argument("--models", default=None, help="comma-separated (default: all)")
    parser.add_argument("--tf-log", action="store_true",
                        help=f"show TensorFlow's C++ log lines (or set {progress.TF_LOG_ENV}=1)")
    args = parser.parse_args(argv)
    progress.native_logs(args.tf_log)  # before anything below imports TensorFlow
    try:
        with _stoppable():
            tier = get_tier(args.tier)
            names = MODELS.select(args.models.split(",") if args.models else None)
            dataset = data_mod.load()
            splits = data_mod.split(dataset, val_size=tier.val_size, train_size=None,
                                    test_size=tier.test_size,
                                    calibration_size=tier.calibration_size, seed=tier.seed)
            cache, inputs = Cache(), {}  # inputs converted once per input shape
            for name in names:
                shape = MODELS.get(name).input_shape
                model_inputs = inputs.setdefault(shape, data_mod.ModelInputs(splits, shape))
                trained = float_model(name, tier, model_inputs, dataset.sha256, cache)
                qat_model(name, tier, model_inputs, trained, cache)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Terminated included
        # The epoch in progress is lost; completed epochs are in the checkpoint.
        sig = exc.args[0] if isinstance(exc, Terminated) else signal.SIGINT
        print(f"interrupted ({signal.Signals(sig).name}): rerun the same command to resume from "
              "the last completed epoch", file=sys.stderr)
        return 128 + sig
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
