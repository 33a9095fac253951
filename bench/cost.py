"""What training a tier costs on this CPU, measured: ``python -m bench.cost --tier full``.

For each selected model, the tier's float recipe and then its QAT recipe are set up exactly as
:mod:`bench.train` sets them up (precision policy, float32 logits, optimizer and learning-rate
schedule, label smoothing, seeding and op determinism, BatchNorm frozen for QAT) and timed:

1. a warm-up ``fit`` of :data:`WARMUP_STEPS` batches, which traces the training step;
2. one timed ``fit`` of N batches (``--steps``; default 12 float, 8 QAT); per step = time / N.

The estimate is ``per_step * ceil(train_images / batch_size) * epochs`` per recipe, summed over
float and QAT and over the models. It leaves out what training does besides the steps (the
per-epoch augmentation and input conversion, the validation pass, checkpoints, QAT's range set-up,
the evaluation afterwards), so it is a lower bound. (Each ``fit`` call also costs ~0.1 s up front,
spread over the N steps: that overstates a fast step timed a few times, not a full-tier one.)
On a CPU without BF16 instructions, vgg16's ``mixed_bfloat16`` recipe runs emulated, about 4.6x
slower than with them; the measurement shows that, since it runs the real recipe rather than
assuming a speed.

Nothing is trained into the cache and the data set is not read: the batches are random uint8
images of the data set's shape (step time does not depend on pixel values), so this works on a
machine before the data is installed.
"""

from __future__ import annotations

import math
import time

import numpy as np

from bench.data import EXPECTED_HEADER

SCHEMA = 1
# Batches of the untimed first fit: Keras traces the training function on its first call.
WARMUP_STEPS = 2
DEFAULT_STEPS = {"float": 12, "qat": 8}
# The data set's training images and their shape, from the header every copy must declare.
_TRAIN_HEADER_SHAPE = EXPECTED_HEADER["train-images-idx3-ubyte"][1]
TRAIN_POOL = _TRAIN_HEADER_SHAPE[0]
IMAGE_SHAPE = _TRAIN_HEADER_SHAPE[1:]


def train_images(tier, train_size: int | None) -> int:
    """Images a recipe trains on per epoch: its ``train_size``, else all left after validation.

    Mirrors ``bench.train.main``, which splits with ``train_size=None`` (the pool minus the tier's
    validation images) and lets ``_fit`` cut the recipe's ``train_size`` from the front.
    """
    return TRAIN_POOL - tier.val_size if train_size is None else train_size


def _random_data(spec, images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``images`` random uint8 images as the model's input, with random one-hot labels."""
    from bench.data import NUM_CLASSES, to_model_input

    rng = np.random.default_rng(seed)
    x = to_model_input(rng.integers(0, 256, (images, *IMAGE_SHAPE), dtype=np.uint8), spec.input_shape)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, images)]
    return x, y


def time_steps(model, spec, batch_size: int, steps: int) -> float:
    """Seconds per training step of a compiled ``model``: one warm-up fit, then a timed one."""
    x, y = _random_data(spec, batch_size * (WARMUP_STEPS + steps), seed=0)
    warm = batch_size * WARMUP_STEPS
    # Not timed: the first fit traces the training function and creates the optimizer's slots,
    # once per model; the second fit reuses both, as every later epoch of real training does.
    model.fit(x[:warm], y[:warm], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    began = time.perf_counter()
    model.fit(x[warm:], y[warm:], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return (time.perf_counter() - began) / steps


def _estimate(kind: str, per_step: float, images: int, recipe, steps: int, precision: str) -> dict:
    steps_per_epoch = math.ceil(images / recipe.batch_size)
    epoch_s = per_step * steps_per_epoch
    return {"kind": kind, "precision": precision, "batch_size": recipe.batch_size, "steps_timed": steps,
            "per_step_s": per_step, "train_images": images, "steps_per_epoch": steps_per_epoch,
            "epoch_s": epoch_s, "epochs": recipe.epochs, "recipe_s": epoch_s * recipe.epochs}


def float_cost(name: str, tier, steps: int) -> dict:
    """Measures the tier's float recipe for ``name``, set up as ``train.float_model`` does."""
    from bench import train
    from bench.models import MODELS

    spec, recipe = MODELS.get(name), tier.train_recipe(name)
    train._check_threads(recipe, f"{name}-{tier.name}")  # another thread count: another speed
    images = train_images(tier, recipe.train_size)
    steps_per_epoch = math.ceil(images / recipe.batch_size)
    # The whole measurement inside the policy, as float_model runs _fit inside it.
    with train._precision(recipe.precision):
        model = train.build_model(spec, tier.seed)  # seeds and turns on op determinism, as training
        if model.compute_dtype != "float32":
            model = train._with_float32_logits(model)
        train._compile(model, train._learning_rate(recipe, steps_per_epoch), recipe.label_smoothing)
        per_step = time_steps(model, spec, recipe.batch_size, steps)
    return _estimate("float", per_step, images, recipe, steps, recipe.precision)


def qat_cost(name: str, tier, steps: int) -> dict:
    """Measures the tier's QAT recipe for ``name``, set up as ``train.qat_model`` does.

    QAT starts from the float32 twin of the trained model, so it is float32 whatever the float
    recipe's precision; an untrained float32 build stands in for it (same graph, same step time).
    """
    from bench import train
    from bench.models import MODELS
    from bench.tfsetup import seed_everything

    spec, recipe = MODELS.get(name), tier.qat_recipe(name)
    float_model = train.build_model(spec, tier.seed)
    seed_everything(tier.seed)
    model = train.quantize_aware(float_model)
    train._freeze_batchnorm(model)  # frozen BatchNorm computes no gradient for its parameters
    # qat_model's fine-tune recipe: a constant rate, no label smoothing.
    train._compile(model, recipe.learning_rate, 0.0)
    per_step = time_steps(model, spec, recipe.batch_size, steps)
    return _estimate("qat", per_step, train_images(tier, recipe.train_size), recipe, steps, "float32")


def select_models(tier, names: list[str] | None) -> list[str]:
    """The models to measure: ``names`` (each checked), else every model the tier has recipes for.

    Raises:
        UnknownNameError: A name that is not a registered model.
        TierError: A named model the tier has no training or QAT recipe for.
    """
    from bench.models import MODELS
    from bench.tiers import TierError

    if names is not None:
        for name in MODELS.select(names):
            tier.train_recipe(name)
            tier.qat_recipe(name)
        return names
    selected = []
    for name in MODELS.names():
        try:
            tier.train_recipe(name)
            tier.qat_recipe(name)
        except TierError:  # a plugin model without facts for this tier: the tier does not train it
            continue
        selected.append(name)
    return selected


def measure(tier, names: list[str], steps: dict[str, int]) -> list[dict]:
    """Float and QAT cost of each model, with the model's total."""
    models = []
    for name in names:
        phases = [float_cost(name, tier, steps["float"]), qat_cost(name, tier, steps["qat"])]
        models.append({"model": name, "phases": phases, "total_s": sum(p["recipe_s"] for p in phases)})
    return models


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def render(document: dict) -> str:
    """The document as a markdown table, headed by the CPU and testbed it was measured on."""
    from tabulate import tabulate

    rows = [[m["model"], p["kind"], p["precision"], p["batch_size"], f"{p['per_step_s'] * 1000:.0f}",
             p["steps_per_epoch"], f"{p['epoch_s']:.0f}", p["epochs"], _duration(p["recipe_s"])]
            for m in document["models"] for p in m["phases"]]
    rows.append(["**total**", "", "", "", "", "", "", "", f"**{_duration(document['total_s'])}**"])
    headers = ["model", "recipe", "precision", "batch", "ms/step", "steps/epoch", "s/epoch", "epochs",
               "estimate"]
    cpu = document["cpu"]
    return (f"Training cost of tier `{document['tier']}` on {cpu['model']} ({cpu['cores']} cores, "
            f"testbed `{document['testbed']}`); training steps only, so a lower bound:\n\n"
            + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.cost [--tier full] [--models a,b] [--steps N] [--json FILE]``: the time a
    tier's training takes on this CPU, from a few timed steps of each recipe.

    Returns:
        The exit status: 0 when done, 2 for an unknown tier or model (or one the tier has no
        recipe for), 1 on another BenchError.
    """
    import argparse
    import datetime as dt
    import shlex
    import sys
    from pathlib import Path

    from bench import atomic, progress
    from bench.environment import cpu
    from bench.errors import BenchError
    from bench.tiers import get_tier

    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=main.__doc__)
    parser.add_argument("--tier", default="full")
    parser.add_argument("--models", default=None, help="comma-separated (default: all the tier trains)")
    parser.add_argument("--steps", type=_positive_int, default=None,
                        help=f"timed steps per recipe (default: {DEFAULT_STEPS['float']} float, "
                             f"{DEFAULT_STEPS['qat']} QAT)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    parser.add_argument("--tf-log", action="store_true",
                        help=f"show TensorFlow's C++ log lines (or set {progress.TF_LOG_ENV}=1)")
    args = parser.parse_args(argv)
    progress.native_logs(args.tf_log)  # before anything below imports TensorFlow
    try:  # names first, before TensorFlow loads: a typo fails in a second
        tier = get_tier(args.tier)
        names = select_models(tier, args.models.split(",") if args.models else None)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = {kind: args.steps or default for kind, default in DEFAULT_STEPS.items()}
    try:
        models = measure(tier, names, steps)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    machine = cpu()
    document = {
        "schema": SCHEMA, "tier": tier.name, "testbed": machine["testbed"], "cpu": machine,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": shlex.join(["python", "-m", "bench.cost", *(sys.argv[1:] if argv is None else argv)]),
        "models": models, "total_s": sum(m["total_s"] for m in models),
    }
    print(render(document))
    if args.json:
        atomic.write_json(args.json, document)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
