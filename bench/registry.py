"""Registries of models, modes and backends: names that double as pytest ids, open to other packages.

A registry knows its built-in entries by module name and imports them on first use (through
:mod:`importlib`, so the registry never imports its entries statically and the package has no
import loop). Other packages add entries through entry points, without editing this repository:

    [project.entry-points."quantbench.models"]
    toy = "my_package.toy_model"

Loading an entry point imports its module, which registers its entry, as the built-in modules
do (``SPEC = MODELS.register("toy", ModelSpec(...))``). Built-ins come first, in their listed
order (the order of reports); entry points follow, sorted by name.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from importlib import metadata
from typing import Generic, TypeVar

from bench.errors import BenchError, unknown_name

T = TypeVar("T")

# Names are pytest ids and parts of case ids ("model-mode-backend"): no dash, nothing a shell or
# a file name would trip over.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


def builtin_modules(package: str, report_order: tuple[str, ...]) -> tuple[str, ...]:
    """The modules of ``package`` that register a built-in entry: every public module in it.

    A new built-in is one file: it is found here without being listed anywhere. Reports show the
    entries named in ``report_order`` (module names within the package) first, in that order,
    then any other by name.

    Args:
        package: The package holding one entry per module (``bench.models``).
        report_order: Module names in the order reports show their entries.
    """
    path = importlib.import_module(package).__path__
    found = sorted(info.name for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))
    ordered = [name for name in report_order if name in found] + [n for n in found if n not in report_order]
    return tuple(f"{package}.{name}" for name in ordered)


class PluginError(BenchError):
    """An entry point of another package that cannot be loaded, or registers something wrong."""


class Registry(Generic[T]):
    """Maps names to entries, in registration order.

    Args:
        kind: What the entries are ("model", "mode", "backend"), for error messages.
        group: The entry-point group other packages register under.
        builtins: Modules of this package that register an entry when imported, in report order.
    """

    def __init__(self, kind: str, group: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self.builtins = builtins
        self._entries: dict[str, T] = {}
        # Name -> module that registered it: built-ins sort by their listed order whatever
        # imported them first.
        self._origins: dict[str, str] = {}
        self._loaded = False
        self._loading = False

    def register(self, name: str, entry: T) -> T:
        """Adds ``entry`` under ``name`` and returns it (modules keep it as their ``SPEC``)."""
        if not NAME_PATTERN.match(name):
            raise PluginError(f"{self.kind} name {name!r} is not valid: use lower-case letters, digits "
                              "and underscores, starting with a letter (names are parts of case ids)")
        if name in self._entries and self._entries[name] is not entry:
            raise PluginError(f"{self.kind} {name!r} is registered twice (the second time by "
                              f"{type(entry).__module__}); rename one of them")
        self._entries[name] = entry
        self._origins[name] = sys._getframe(1).f_globals.get("__name__", "")
        if self._loaded:
            self._order()
        return entry

    def get(self, name: str) -> T:
        """Returns the entry, or raises UnknownNameError listing the valid names."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, list(self._entries)) from None

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def select(self, names: list[str] | None) -> list[str]:
        """Validates a user's selection; ``None`` selects everything."""
        if names is None:
            return self.names()
        for name in names:
            self.get(name)
        return list(names)

    def _load(self) -> None:
        # Entry modules import the registry and register while it loads: no second load then.
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self.builtins:
                importlib.import_module(module)
            for entry_point in sorted(metadata.entry_points(group=self.group), key=lambda e: e.name):
                self._load_entry_point(entry_point)
            self._loaded = True
            self._order()
        finally:
            self._loading = False

    def _order(self) -> None:
        """Built-ins first, in their listed order; every other entry after them, by name."""
        def rank(name: str) -> tuple[int, str]:
            origin = self._origins.get(name, "")
            return (self.builtins.index(origin) if origin in self.builtins else len(self.builtins), name)

        self._entries = {name: self._entries[name] for name in sorted(self._entries, key=rank)}

    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        origin = f"entry point {entry_point.name!r} = {entry_point.value!r} of group {self.group!r}"
        if entry_point.value.split(":")[0] in self.builtins:
            return
        try:
            entry_point.load()
        except Exception as exc:
            raise PluginError(f"{origin} cannot be loaded ({type(exc).__name__}: {exc}); fix or "
                              "uninstall the package that declares it") from exc
        if entry_point.name not in self._entries:
            raise PluginError(f"{origin} loaded, but registered no {self.kind} named "
                              f"{entry_point.name!r}; its module must call register({entry_point.name!r}, ...)")
