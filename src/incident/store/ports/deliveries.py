"""The store's port for deliveries: every move a compare-and-set on the state (exactly once:
see :mod:`incident.deliveries.states`), the senders' leases, inbound messages."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from incident.deliveries.records import Delivery, DeliveryChange
from incident.deliveries.states import DeliveryState


class DeliveryPort(Protocol):
    """Deliveries: every move a compare-and-set on the state (exactly once), the senders'
    leases, inbound messages."""

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> int:
        """Insert deliveries; one already planned for the same (notice, channel, address) is
        left as it is. Returns how many were new."""
        ...

    async def change_delivery(self, change: DeliveryChange, at: str) -> Delivery | None:
        """Apply ``change`` if the delivery's state is still one it expects (None if not),
        and log it in the delivery's events."""
        ...

    async def change_deliveries(self, changes: Sequence[DeliveryChange], at: str) -> list[Delivery | None]:
        """:meth:`change_delivery` for many in one transaction (the answers of a batch of
        sends); one result per change, in order."""
        ...

    async def count_deliveries_in(self, states: Collection[DeliveryState]) -> int:
        """How many deliveries are in ``states`` (cheap: the fan-out's back-pressure)."""
        ...

    async def queue_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[tuple[str, str]]:
        """Move the planned or retry-due ones of ``delivery_ids`` to ``queued`` in one go;
        returns (delivery_id, account_id) of those moved (the others were taken meanwhile)."""
        ...

    async def take_deliveries(self, delivery_ids: Sequence[str], at: str) -> list[Delivery]:
        """Claim and start in one step: the ``queued`` ones of ``delivery_ids`` become
        ``sending`` with one more attempt, in one go; returns those taken (a replayed job finds
        none). The fan-out itself claims, then starts (:meth:`claim_deliveries`)."""
        ...

    async def claim_deliveries(self, delivery_ids: Sequence[str], owner: str, at: str) -> list[Delivery]:
        """A sender claims jobs: the ``queued`` ones of ``delivery_ids`` become ``claimed`` by
        ``owner`` (no attempt counted: no carrier call yet), in one go; returns those claimed."""
        ...

    async def start_deliveries(
        self, delivery_ids: Sequence[str], at: str, owner: str | None = None
    ) -> list[str]:
        """Just before their carrier calls: the ``claimed`` ones of ``delivery_ids`` (claimed by
        ``owner``, if given) become ``sending`` with one more attempt, in one go; returns the
        ids started (one released meanwhile, or claimed by another since, is not: its sender
        must not call)."""
        ...

    async def renew_sender(self, owner: str, alive_until: str, taken_at: str | None) -> None:
        """Extend ``owner``'s sender lease to ``alive_until`` and, if given, note when it last
        took a delivery; leases over a day old are forgotten."""
        ...

    async def orphaned_sending(self, alive_at: str, limit: int) -> list[Delivery]:
        """``sending`` deliveries of senders whose lease does not reach past ``alive_at``: their
        carrier call may have started, and nobody will record its answer."""
        ...

    async def release_claims(
        self, alive_at: str, claimed_before: str, stale_before: str, at: str, owner: str | None = None
    ) -> int:
        """``claimed`` deliveries go back to ``planned`` (their carrier call never started):
        those of ``owner`` if given; else those claimed before ``claimed_before`` by an owner
        whose lease does not reach past ``alive_at``, and any claimed before ``stale_before``.
        Returns how many."""
        ...

    async def fanout_progress(self, now: str) -> tuple[str | None, str | None]:
        """Since when the oldest delivery due at ``now`` (planned or retry) has been due, and
        when any sender last took one (None: none due / never)."""
        ...

    async def awaiting_final(self, before: str, limit: int) -> list[Delivery]:
        """Deliveries the carrier has (a SID) whose final status has not come since ``before``:
        accepted, sent, ringing or answered, push excepted; the longest waiting first."""
        ...

    async def record_inbound(self, message_sid: str, at: str) -> bool:
        """Note an inbound SMS as handled; False when it was already (a replay)."""
        ...

    async def forget_inbound(self, message_sid: str) -> None:
        """Undo :meth:`record_inbound` (handling it failed: a resend must be handled)."""
        ...

    async def get_delivery(self, delivery_id: str) -> Delivery | None: ...

    async def deliveries_by_id(self, delivery_ids: Sequence[str]) -> list[Delivery]:
        """The ones of ``delivery_ids`` that exist, in no particular order."""
        ...

    async def delivery_by_sid(self, carrier_sid: str) -> Delivery | None: ...

    async def due_deliveries(self, now: str, limit: int, notice_id: str | None = None) -> list[Delivery]:
        """Deliveries to send now: planned or due for retry, in priority order."""
        ...

    async def deliveries_in(self, states: Collection[DeliveryState], limit: int) -> list[Delivery]: ...

    async def delivery_counts(self, incident_id: str) -> dict[str, dict[str, int]]:
        """Per channel, per state."""
        ...

    async def list_deliveries(self, incident_id: str, after: str, limit: int) -> list[Delivery]: ...

    async def delivery_events(self, delivery_id: str) -> list[tuple[str, str, str]]: ...

    async def latest_delivery_to(self, address: str) -> Delivery | None:
        """The delivery (not a draft) of the most recently created notice to ``address``."""
        ...
