"""File formats, and the exporters that make each mode's file in each format.

Modes and backends meet here, at the file, and neither names the other:

* A backend module **defines the formats it introduces** (:func:`define`: a name, a suffix) and
  says which formats it runs (``Backend.formats``, preferred first). ``onnxruntime`` defines
  ``onnx``; ``openvino`` defines ``openvino`` (NNCF's ONNX files) and runs ``onnx`` as well.
* Whoever knows how to make a mode's file in a format **registers the exporter** under
  ``(mode, format)`` (:func:`register`), the way ai-edge-quantizer registers an algorithm per op:
  a mode module for the formats it supports, a backend module with a format of its own for the
  modes it supports. A combination that cannot exist is registered with the reason instead
  (:func:`unsupported`), which becomes the pytest skip.
* A case ``model-mode-backend`` runs the file of the first of the backend's formats that has an
  exporter for the mode (:func:`artifact_format`). Two backends that resolve to one format run the
  very same file.

A new backend with a format of its own is therefore one file: it defines the format, registers
its exporters and registers itself.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from bench.errors import unknown_name
from bench.registry import NAME_PATTERN, PluginError

# ``export(ctx, path)``: writes the file of one mode in one format (ctx: bench.modes.ExportContext).
Exporter = Callable[[object, Path], None]


@dataclasses.dataclass(frozen=True)
class FileFormat:
    """A kind of artifact file.

    Attributes:
        name: Registry key (e.g. ``onnx``).
        suffix: The files' suffix (modes write ``model<suffix>``).
        description: One line for reports.
        home: The backend that defines it: its module's code (which loads and checks such files)
            goes into the files' cache keys, and its name labels their cache entries and
            conversion times.
    """

    name: str
    suffix: str
    description: str
    home: str


@dataclasses.dataclass(frozen=True)
class Export:
    """How one mode's file is made in one format, and what that file promises.

    Attributes:
        make: ``make(ctx, path)`` writes the file.
        per_channel: The file keeps one weight scale per output channel in every layer (the
            weight checks hold it to that).
        batch_dependent: Why one image's output from this file depends on the other images of
            its batch (None: it must not, and ``gates.batch_dependence_check`` checks it).
            Such files are evaluated one image at a time, as they are deployed.
        agreement_floor: Top-1 agreement floor of every pair of backends that includes one
            running this file, where the file comes from another quantizer than the others' (None:
            the mode's ``agreement_floor``).
        variant: ``variant(testbed) -> str | None``: the name of the variant of the file that
            the testbed's recipe makes (ONNX Runtime's int8 formats, S8S8 or U8U8); it goes into
            the case's recipe hash (None: one variant everywhere).
    """

    make: Exporter
    per_channel: bool = False
    batch_dependent: str | None = None
    agreement_floor: float | None = None
    variant: Callable[[object], str | None] | None = None


_FORMATS: dict[str, FileFormat] = {}
# (mode, format) -> Export, or the reason that file cannot exist.
_EXPORTS: dict[tuple[str, str], Export | str] = {}
# (mode, format) -> module that registered it, for the duplicate-registration error.
_REGISTERED_BY: dict[tuple[str, str], str] = {}


def define(name: str, suffix: str, description: str, home: str) -> FileFormat:
    """Defines a file format (a backend module does, for the format it introduces)."""
    if not NAME_PATTERN.match(name):
        raise PluginError(f"format name {name!r} is not valid: use lower-case letters, digits and "
                          "underscores, starting with a letter")
    fmt = FileFormat(name, suffix, description, home)
    if _FORMATS.get(name, fmt) != fmt:
        raise PluginError(f"format {name!r} is defined twice, differently (by backends "
                          f"{_FORMATS[name].home!r} and {home!r}); rename one of them")
    _FORMATS[name] = fmt
    return fmt


def register(mode: str, fmt: str, export: Export) -> Export:
    """Registers how ``mode``'s file is made in format ``fmt``."""
    return _put(mode, fmt, export)


def unsupported(mode: str, fmt: str, reason: str) -> str:
    """Registers why ``mode`` has no file in format ``fmt`` (shown as the cases' skip reason)."""
    return _put(mode, fmt, reason)


def _put(mode: str, fmt: str, entry: Export | str):
    key = (mode, fmt)
    origin = sys._getframe(2).f_globals.get("__name__", "")
    if key in _EXPORTS and _EXPORTS[key] is not entry:
        raise PluginError(f"the {fmt} file of mode {mode!r} is registered twice (by {_REGISTERED_BY[key]} "
                          f"and {origin}); remove one of the registrations")
    _EXPORTS[key], _REGISTERED_BY[key] = entry, origin
    return entry


def _registry(module: str):
    # Through importlib, as bench.registry loads its entries: modes and backends register here
    # when imported, so this module never imports them statically (no import loop).
    return importlib.import_module(module)


def _load() -> None:
    """Imports every mode and backend, which registers their formats and exporters."""
    _registry("bench.modes").MODES.names()
    _registry("bench.backends").BACKENDS.names()


def get(name: str) -> FileFormat:
    """The format, or UnknownNameError listing the defined ones."""
    _load()
    try:
        return _FORMATS[name]
    except KeyError:
        raise unknown_name("format", name, list(_FORMATS)) from None


def export(mode: str, fmt: str) -> Export | None:
    """How ``mode``'s file is made in ``fmt`` (None: it is not, or cannot be)."""
    _load()
    entry = _EXPORTS.get((mode, fmt))
    return entry if isinstance(entry, Export) else None


def exports_of(mode: str) -> dict[str, Export]:
    """Format -> export, for every format ``mode`` has a file in."""
    _load()
    return {fmt: entry for (m, fmt), entry in _EXPORTS.items() if m == mode and isinstance(entry, Export)}


def _backend_formats(backend: str) -> tuple[str, ...]:
    return _registry("bench.backends").BACKENDS.get(backend).formats


def artifact_format(mode: str, backend: str) -> str | None:
    """The format of the file ``backend`` runs in ``mode``: the first of its formats that has an
    exporter for the mode (None: none has)."""
    return next((fmt for fmt in _backend_formats(backend) if export(mode, fmt)), None)


def artifact_export(mode: str, backend: str) -> Export | None:
    """The export of the file ``backend`` runs in ``mode`` (None: there is none)."""
    fmt = artifact_format(mode, backend)
    return export(mode, fmt) if fmt else None


def skip_reason(mode: str, backend: str) -> str | None:
    """Why ``backend`` has no file to run in ``mode`` (None: it has one)."""
    if artifact_format(mode, backend):
        return None
    formats = _backend_formats(backend)
    reasons = [_EXPORTS[(mode, fmt)] for fmt in formats if isinstance(_EXPORTS.get((mode, fmt)), str)]
    if reasons:
        return reasons[0]
    return f"{mode} has no exporter for {backend}'s file formats ({', '.join(formats)})"


def home(mode: str, backend: str) -> str:
    """The backend whose format the file ``backend`` runs in ``mode`` is (itself, or the backend
    defining the format it reads)."""
    fmt = artifact_format(mode, backend)
    if fmt is None:
        return backend
    owner = get(fmt).home
    # The file is made, cached and timed under the defining backend: it must run that very file.
    if artifact_format(mode, owner) != fmt:
        raise PluginError(f"{backend} runs the {fmt} file of mode {mode!r}, but {owner}, which defines format "
                          f"{fmt!r}, runs its {artifact_format(mode, owner)} file instead; list {fmt!r} first "
                          f"in {owner}'s formats, or register {mode!r}'s exporter for another format")
    return owner


def runs_onnx(backend: str) -> bool:
    """Whether ``backend`` runs ONNX files (of any of its formats)."""
    return any(get(fmt).suffix == ".onnx" for fmt in _backend_formats(backend))
