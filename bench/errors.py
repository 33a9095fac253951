"""Errors the harness raises on purpose: each says what was wrong and what to do."""

from __future__ import annotations


class BenchError(Exception):
    """Base class: a problem the user can act on, shown without a traceback."""


class DatasetError(BenchError):
    """The Fashion-MNIST files are missing, truncated or not the expected bytes."""


class UnknownNameError(BenchError):
    """A model, mode, backend or tier name that is not registered."""


class BaselineError(BenchError):
    """A baselines file that cannot be read, or is of an unknown schema."""


class ArtifactError(BenchError):
    """A model artifact (.tflite, .onnx, .keras) that cannot be loaded or run."""


class ReportError(BenchError):
    """A report or results file that cannot be written or read."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Builds the error for a name that is not registered.

    Args:
        kind: What the name is of ("model", "mode", "backend", "tier").
        name: The name that was given.
        valid: The registered names.

    Returns:
        An error whose message lists the valid names.
    """
    return UnknownNameError(
        f"unknown {kind} {name!r}; valid {kind}s are: {', '.join(sorted(valid))}"
    )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none).

    Runtimes raise multi-page messages; the first line says what failed, and the harness adds
    what to do.
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
