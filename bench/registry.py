"""A tiny registry: names that double as pytest ids, and one clear error for an unknown one."""

from __future__ import annotations

from typing import Generic, TypeVar

from bench.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to entries, in registration order.

    Args:
        kind: What the entries are ("model", "mode", "backend"), for error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """Returns the entry, or raises UnknownNameError listing the valid names."""
        try:
            return self._entries[name]
        except KeyError:
            raise unknown_name(self.kind, name, list(self._entries)) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def select(self, names: list[str] | None) -> list[str]:
        """Validates a user's selection; ``None`` selects everything."""
        if names is None:
            return self.names()
        for name in names:
            self.get(name)
        return list(names)
