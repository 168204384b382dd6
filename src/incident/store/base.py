"""The store interface. Two implementations pass one contract suite: SQLite and PostgreSQL.

Every change goes through :meth:`Store.append` (or :meth:`Store.create_incident`): the store
reads the current state inside a transaction, hands it to a pure ``decide`` function that
returns event drafts or raises, seals the drafts into the hash chain and writes events and
projection together. So lifecycle rules are checked against the state they change, and a
failed request leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

import msgspec

from incident.domain import EventDraft, Incident, Status, TimelineEvent

#: Given the new incident's id, the events that open it.
Opener = Callable[[str], Sequence[EventDraft]]
#: Given the current state, the events to append (possibly none), or raise.
Decider = Callable[[Incident], Sequence[EventDraft]]


class Appended(msgspec.Struct, frozen=True):
    incident: Incident
    events: list[TimelineEvent]


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~incident.errors.StoreError` unless the database answers."""
        ...

    async def schema_version(self) -> int: ...

    async def create_incident(self, opener: Opener) -> Appended: ...

    async def append(self, incident_id: str, decide: Decider) -> Appended: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(
        self, statuses: Collection[Status] | None = None, limit: int = 100
    ) -> list[Incident]: ...

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]: ...


def incident_counter(year: int) -> str:
    return f"incident:{year}"
