"""The store's port for timers: durable playbook timers and the per-incident evaluation lease."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec


class DueTimer(msgspec.Struct, frozen=True, kw_only=True):
    """A durable timer: what the playbook engine must look at, and when."""

    #: Deterministic (incident, stage visit, timer, round): scheduling twice is one timer.
    timer_id: str
    incident_id: str
    due_at: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    #: pending -> claimed (by one instance, for a lease) -> done; or cancelled.
    state: str = "pending"
    claimed_by: str | None = None
    claimed_until: str | None = None
    fired_at: str | None = None


class TimerPort(Protocol):
    """Durable playbook timers and the per-incident evaluation lease."""

    async def schedule_timers(self, timers: Sequence[DueTimer], *, rearm: bool = False) -> None:
        """Add timers; one that exists is left alone, or with ``rearm`` made pending again
        (keeping the earlier due time of a pending one)."""
        ...

    async def claim_timers(self, now: str, owner: str, lease_until: str, limit: int) -> list[DueTimer]:
        """Claim due timers for ``owner`` until ``lease_until``: each claimed by one caller
        (also across instances), and claimable again once its lease runs out."""
        ...

    async def finish_timer(self, timer_id: str, owner: str, at: str) -> bool:
        """Mark a timer done, if ``owner`` still holds it (False: re-armed or taken over)."""
        ...

    async def cancel_timers(self, incident_id: str, prefix: str) -> int:
        """Cancel the incident's pending or claimed timers whose id starts with ``prefix``."""
        ...

    async def list_timers(self, incident_id: str) -> list[DueTimer]:
        """The incident's timers, by due time."""
        ...

    async def lock_incident(self, incident_id: str, owner: str, now: str, until: str) -> bool:
        """Take the incident's evaluation lease until ``until`` (True), unless another owner
        holds it past ``now`` (False). Taking it again as its owner extends it."""
        ...

    async def unlock_incident(self, incident_id: str, owner: str, now: str) -> None:
        """Give the lease back (it ends ``now``), if ``owner`` holds it."""
        ...
