"""The store's port for its lifecycle: opening, health, schema version, meta values and named
counters."""

from __future__ import annotations

from typing import Protocol


def incident_counter(year: int) -> str:
    """The named counter (:meth:`LifecyclePort.next_value`) of a year's incident numbers."""
    return f"incident:{year}"


class LifecyclePort(Protocol):
    """Opening, health, schema version, meta values and named counters."""

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~incident.core.errors.StoreError` unless the database answers."""
        ...

    async def schema_version(self) -> int: ...

    async def get_meta(self, key: str) -> str | None: ...

    async def set_meta(self, key: str, value: str) -> None: ...

    async def next_value(self, name: str) -> int:
        """The next number of a named counter (1, 2, ...), safe across instances."""
        ...

    async def counter_value(self, name: str) -> int:
        """The last number :meth:`next_value` gave for ``name`` (0 before the first)."""
        ...
