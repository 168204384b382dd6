"""The store interface. Two implementations pass one contract suite: SQLite and PostgreSQL.

Every change goes through :meth:`Store.append` (or :meth:`Store.create_incident`): the store
reads the current state inside a transaction, hands it to a pure ``decide`` function that
returns event drafts or raises, seals the drafts into the hash chain and writes events and
projection together. So lifecycle rules are checked against the state they change, and a
failed request leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from incident.core.domain import EventDraft, Incident, Status, TimelineEvent
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import DeliveryState
from incident.households.model import Household
from incident.reports.correlation import Candidate
from incident.reports.model import Report, ReportStatus, StoredReport

#: Given the new incident's id, the events that open it.
Opener = Callable[[str], Sequence[EventDraft]]
#: Given the current state, the events to append (possibly none), or raise.
Decider = Callable[[Incident], Sequence[EventDraft]]


class Appended(msgspec.Struct, frozen=True):
    """The state after an append, and the events it added."""

    incident: Incident
    events: list[TimelineEvent]


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


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending schema migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~incident.core.errors.StoreError` unless the database answers."""
        ...

    async def schema_version(self) -> int: ...

    async def create_incident(self, opener: Opener) -> Appended: ...

    async def append(self, incident_id: str, decide: Decider) -> Appended: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(
        self,
        statuses: Collection[Status] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[Incident]:
        """Newest first (``declared_at``, then ``id``, descending); ``after`` is the
        ``(declared_at, id)`` of the row a page ended with: the rows after it in that order."""
        ...

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]: ...

    async def ingest_reports(self, reports: Sequence[IncomingReport], planner: Planner) -> IngestResult:
        """Store new reports (a known ``report_id`` is a duplicate and changes nothing), and in
        the same transaction carry out what ``planner`` decides for the new ones."""
        ...

    async def apply_plan(self, steps: Sequence[PlanStep]) -> PlanResult:
        """Carry out ``steps`` in one transaction: all of them or none."""
        ...

    async def get_report(self, report_id: str) -> StoredReport | None: ...

    async def upsert_households(self, households: Sequence[Household]) -> HouseholdUpsert:
        """Add new households and update changed ones, by ``account_id``."""
        ...

    async def households_page(self, after: str, limit: int) -> list[Household]:
        """Households ordered by ``account_id``, after ``after`` (keyset paging)."""
        ...

    async def count_households(self) -> int: ...

    async def get_meta(self, key: str) -> str | None: ...

    async def next_value(self, name: str) -> int:
        """The next number of a named counter (1, 2, ...), safe across instances."""
        ...

    async def release_deliveries(self, notice_id: str, not_before: str | None) -> int:
        """An approved notice's draft deliveries become planned (to be sent after ``not_before``)."""
        ...

    async def get_notice(self, notice_id: str) -> Notice | None: ...

    async def list_notices(self, incident_id: str) -> list[Notice]: ...

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

    async def pending_by_notice(self, incident_id: str) -> dict[str, tuple[int, str | None]]:
        """Per notice of the incident: deliveries not yet tried (planned, queued, sending) and
        the earliest ``not_before`` among them."""
        ...

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

    async def set_meta(self, key: str, value: str) -> None: ...

    async def list_reports(
        self,
        statuses: Collection[ReportStatus] | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[StoredReport]:
        """Newest first (``received_at`` descending, then ``report_id``); ``after`` is the
        ``(received_at, report_id)`` of the row a page ended with: the rows after it."""
        ...

    # --- opt-outs by reply (STOP / START) and inbound replies ------------------------------

    async def set_opt_out(self, address: str, channel: str, opted_out: bool, at: str) -> None:
        """Record that ``address`` opted out of (or back into) ``channel`` at ``at``; an older
        ``at`` than the one recorded changes nothing (replies may be processed out of order)."""
        ...

    async def opted_out_addresses(self, channel: str) -> set[str]:
        """Addresses that are opted out of ``channel`` by reply."""
        ...

    async def opt_out_state(self, address: str, channel: str) -> bool | None:
        """True/False when ``address`` opted out of / back into ``channel`` by reply; None when
        it never did (the households file's ``opt_out`` applies)."""
        ...

    async def latest_delivery_to(self, address: str) -> Delivery | None:
        """The delivery (not a draft) of the most recently created notice to ``address``."""
        ...

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

    # --- idempotency keys of the HTTP API ----------------------------------------------------

    async def claim_idempotency_key(
        self, record: IdempotencyRecord, expired_before: str
    ) -> IdempotencyRecord | None:
        """Insert ``record`` (state ``pending``) unless one with its scope and key exists; None
        when inserted, else the existing one. A record created before ``expired_before`` has
        expired: it is removed first, so the key is new again."""
        ...

    async def update_idempotency_key(
        self, scope: str, key: str, expect_updated_at: str, change: IdempotencyChange
    ) -> bool:
        """Apply ``change`` if the record was last updated at ``expect_updated_at`` (False: it
        changed meanwhile, or is gone)."""
        ...

    async def get_idempotency_key(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    async def purge_idempotency_keys(self, created_before: str) -> int:
        """Remove records created before ``created_before``; returns how many."""
        ...

    async def counter_value(self, name: str) -> int:
        """The last number :meth:`next_value` gave for ``name`` (0 before the first)."""
        ...


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An ``Idempotency-Key`` of one caller on one route, and the first answer to it."""

    #: Caller, method and path: the same key elsewhere is another key.
    scope: str
    key: str
    body_sha256: str
    #: pending (running) -> done (the answer is final) | unknown (a 5xx: the write may have happened).
    state: str = "pending"
    status: int | None = None
    #: The first answer's body (JSON text).
    response: str | None = None
    #: What the route's writes move, read before they ran (see incident.api.idempotency).
    guard: str | None = None
    created_at: str
    updated_at: str


class IdempotencyChange(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    updated_at: str
    status: int | None = None
    response: str | None = None
    guard: str | None = None


def incident_counter(year: int) -> str:
    return f"incident:{year}"


# --- multi-step changes: reports, links, declarations -------------------------------------


@dataclass(frozen=True)
class NewIncident:
    """Open an incident; later steps refer to it by ``ref`` (``new:N``)."""

    ref: str
    opener: Opener


@dataclass(frozen=True)
class AppendTo:
    """Append to an incident by id, or by the ``ref`` of one opened earlier in the plan."""

    ref: str
    decide: Decider


@dataclass(frozen=True)
class SetReport:
    """Change a report's triage status; ``expect`` guards against a concurrent change."""

    report_id: str
    status: ReportStatus
    incident_ref: str | None = None
    note: str | None = None
    triaged_by: str | None = None
    expect: frozenset[ReportStatus] | None = None


@dataclass(frozen=True)
class PutNotice:
    """Insert or replace a notice record (its timeline event is a separate ``AppendTo``)."""

    notice: Notice
    #: Also its ``draft`` deliveries become ``planned`` (``not_before``: the notice's
    #: ``send_after``), in the same transaction: an approval is never half done.
    release_drafts: bool = False


PlanStep = NewIncident | AppendTo | SetReport | PutNotice


class PlanResult(msgspec.Struct, frozen=True):
    appended: list[Appended]
    #: ``new:N`` refs to the ids the store gave the incidents.
    ids: dict[str, str]


class IncomingReport(msgspec.Struct, frozen=True):
    report: Report
    origin: str


class IngestResult(msgspec.Struct, frozen=True):
    #: Reports stored by this call, as they ended up (linked, or unassigned).
    stored: list[StoredReport]
    duplicates: list[str]
    appended: list[Appended]


class HouseholdUpsert(msgspec.Struct, frozen=True):
    added: int
    updated: int
    unchanged: int


#: Given the reports that are new and the open incidents, the steps to take.
Planner = Callable[[list[Report], list[Candidate]], Sequence[PlanStep]]
