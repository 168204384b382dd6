"""Row mapping shared by both stores (pure)."""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec
import orjson

from incident.core.clock import isoformat
from incident.core.domain import OPEN_STATUSES, Incident
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import (
    AWAITING_FINAL,
    NO_RECEIPTS,
    NOT_TRIED,
    RELEASABLE,
    SENDABLE,
    DeliveryState,
    sql_list,
)
from incident.deliveries.states import DeliveryState as S
from incident.households.enrolment import Pending
from incident.households.model import Channel, Household, HouseholdSource, Need, Priority
from incident.reports.correlation import Candidate, Sighting
from incident.reports.model import Report, ReportStatus, StoredReport
from incident.store.ports import DueTimer, HouseholdUpsert, IdempotencyRecord
from incident.store.ports.enrolments import Admission, Enrolment, EnrolmentLimits

REPORT_COLUMNS = (
    "report_id, kind, utility, severity, observed_at, received_at, lon, lat, asset_type, asset_id,"
    " body, origin, status, incident_id, note, triaged_by"
)
OPEN = tuple(s.value for s in OPEN_STATUSES)

_encode = msgspec.json.Encoder().encode
_decode_report = msgspec.json.Decoder(Report).decode


@dataclass(frozen=True)
class Backoff:
    """How long a store keeps trying after transient database errors (both stores)."""

    #: Seconds from the first try after which a transient error is given up on (0: no retry).
    budget_s: float = 10.0
    first_s: float = 0.05
    max_s: float = 1.0


class Retry:
    """One operation's retries: exponential pauses with jitter until the budget runs out."""

    def __init__(self, backoff: Backoff, now: Callable[[], float] = time.monotonic) -> None:
        self._backoff = backoff
        self._now = now
        self._deadline = now() + backoff.budget_s
        self._tries = 0

    def pause(self) -> float | None:
        """The pause before the next try (the last one lands on the deadline), or None once the
        budget is spent."""
        ceiling = min(self._backoff.max_s, self._backoff.first_s * 2**self._tries)
        # Jitter: instances that lost the same server do not all come back at once.
        delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311
        self._tries += 1
        left = self._deadline - self._now()
        return min(delay, left) if left > 0 else None


def report_row(report: Report, origin: str, received_at: str) -> tuple[Any, ...]:
    loc, asset = report.location, report.asset
    return (
        report.report_id, report.kind.value, report.utility.value, report.severity.value,
        report.observed, received_at,
        loc.lon if loc else None, loc.lat if loc else None,
        asset.type if asset else None, asset.id if asset else None,
        _encode(report).decode(), origin, ReportStatus.unassigned.value, None, None, None,
    )  # fmt: skip


def stored_report(row: Any) -> StoredReport:
    return StoredReport(
        report=_decode_report(row[10]),
        received_at=row[5],
        origin=row[11],
        status=ReportStatus(row[12]),
        incident_id=row[13],
        note=row[14],
        triaged_by=row[15],
    )


#: Linked reports of open incidents: what correlation compares a new report with.
SIGHTINGS_SQL = (
    "SELECT r.incident_id, r.report_id, r.observed_at, r.lon, r.lat, r.asset_type, r.asset_id"
    " FROM reports r JOIN incidents i ON i.id = r.incident_id"
    " WHERE i.status IN ({open})"
)


def candidates(incidents: Iterable[Incident], sighting_rows: Iterable[Any]) -> list[Candidate]:
    by_incident: dict[str, list[Sighting]] = defaultdict(list)
    for incident_id, report_id, observed_at, lon, lat, asset_type, asset_id in sighting_rows:
        by_incident[incident_id].append(
            Sighting(
                report_id=report_id,
                observed_at=datetime.fromisoformat(observed_at),
                lon=lon,
                lat=lat,
                asset=(asset_type, asset_id) if asset_type is not None else None,
            )
        )
    return [Candidate.of(i, by_incident.get(i.id, [])) for i in incidents]


# --- households -----------------------------------------------------------------------------

HOUSEHOLD_COLUMNS = (
    "account_id, lon, lat, address, language, sms, voice, app_token, priority, opt_out, digest, updated_at,"
    " email, source, needs, priority_confirmed"
)
#: Placeholders per household row.
HOUSEHOLD_WIDTH = 16


def _joined(values: Iterable[StrEnum]) -> str:
    return "|".join(sorted(v.value for v in values))


def household_digest(h: Household) -> str:
    """Changes when anything about the household changes; re-imports skip equal rows."""
    priority = h.priority.value if h.priority else ""
    parts: tuple[str, ...] = (h.account_id, repr(h.lon), repr(h.lat), h.address, h.language, h.sms, h.voice,
                              h.app_token, priority, _joined(h.opt_out))  # fmt: skip
    if h.email or h.needs or h.source is not HouseholdSource.file or not h.priority_confirmed:
        # Only then: a household without them keeps the digest it had before these fields
        # (the first import after an upgrade does not rewrite every row).
        parts += (h.email, h.source.value, _joined(h.needs), "1" if h.priority_confirmed else "0")
    return hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False).hexdigest()


def household_row(h: Household, digest: str, updated_at: str) -> tuple[Any, ...]:
    priority = h.priority.value if h.priority else None
    return (h.account_id, h.lon, h.lat, h.address, h.language, h.sms, h.voice, h.app_token, priority,
            _joined(h.opt_out), digest, updated_at, h.email, h.source.value, _joined(h.needs),
            int(h.priority_confirmed))  # fmt: skip


# A file row never overwrites a self-enrolled household (the guard holds even when an
# enrolment lands between reading the stored sources and writing).
HOUSEHOLD_UPSERT = (
    f"INSERT INTO households ({HOUSEHOLD_COLUMNS}) VALUES ({{}})"  # noqa: S608
    " ON CONFLICT (account_id) DO UPDATE SET lon = excluded.lon, lat = excluded.lat,"
    " address = excluded.address, language = excluded.language, sms = excluded.sms,"
    " voice = excluded.voice, app_token = excluded.app_token, priority = excluded.priority,"
    " opt_out = excluded.opt_out, digest = excluded.digest, updated_at = excluded.updated_at,"
    " email = excluded.email, source = excluded.source, needs = excluded.needs,"
    " priority_confirmed = excluded.priority_confirmed"
    " WHERE households.source <> 'self' OR excluded.source = 'self'"
)


def upsert_rows(
    households: Sequence[Household], known: Mapping[str, tuple[str, str]], now: str
) -> tuple[list[tuple[Any, ...]], HouseholdUpsert]:
    """Which households to write (new or changed, by digest) and the counts, given the
    (digest, source) already stored by account id. A file row for a self-enrolled
    household is not written (counted as ``kept``)."""
    rows: list[tuple[Any, ...]] = []
    added = updated = kept = 0
    for h in households:
        digest = household_digest(h)
        stored = known.get(h.account_id)
        if stored is not None and stored[0] == digest:
            continue
        protected = stored is not None and stored[1] == HouseholdSource.self_enrolled
        if protected and h.source is HouseholdSource.file:
            kept += 1
            continue
        if stored is not None:
            updated += 1
        else:
            added += 1
        rows.append(household_row(h, digest, now))
    return rows, HouseholdUpsert(added, updated, len(households) - added - updated - kept, kept)


def household_of(row: Any) -> Household:
    return Household(
        account_id=row[0], lon=row[1], lat=row[2], address=row[3], language=row[4], sms=row[5], voice=row[6],
        app_token=row[7], priority=Priority(row[8]) if row[8] else None,
        opt_out=frozenset(Channel(c) for c in row[9].split("|") if c),
        email=row[12], source=HouseholdSource(row[13]),
        needs=frozenset(Need(n) for n in row[14].split("|") if n), priority_confirmed=bool(row[15]),
    )  # fmt: skip


# --- notices and deliveries -------------------------------------------------------------------

DELIVERY_COLUMNS = (
    "delivery_id, notice_id, incident_id, seq, channel, address, account_id, language, priority_rank,"
    " state, attempts, carrier_sid, error_code, not_before, next_attempt_at, fallback_of, updated_at"
)
_decode_notice = msgspec.json.Decoder(Notice).decode


def delivery_row(d: Delivery) -> tuple[Any, ...]:
    return (d.delivery_id, d.notice_id, d.incident_id, d.seq, d.channel, d.address, d.account_id, d.language,
            d.priority_rank, d.state.value, d.attempts, d.carrier_sid, d.error_code, d.not_before,
            d.next_attempt_at, d.fallback_of, d.updated_at)  # fmt: skip


_STATES = {s.value: s for s in DeliveryState}  # a dict lookup: the enum call is slow per row


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        delivery_id=row[0], notice_id=row[1], incident_id=row[2], seq=row[3], channel=row[4],
        address=row[5], account_id=row[6], language=row[7], priority_rank=row[8],
        state=_STATES[row[9]], attempts=row[10], carrier_sid=row[11], error_code=row[12],
        not_before=row[13], next_attempt_at=row[14], fallback_of=row[15], updated_at=row[16],
    )  # fmt: skip


def notice_row(n: Notice, now: str) -> tuple[Any, ...]:
    return (n.notice_id, n.incident_id, n.template, ",".join(n.channels), n.status,
            _encode(n).decode(), n.created_at, now)  # fmt: skip


def notice_of(body: str) -> Notice:
    return _decode_notice(body)


def change_fields(change: DeliveryChange, at: str) -> dict[str, Any]:
    """The columns a delivery change sets (only those it names)."""
    fields: dict[str, Any] = {"state": change.to.value, "updated_at": at}
    if change.carrier_sid is not None:
        fields["carrier_sid"] = change.carrier_sid
    if change.error_code is not None:
        fields["error_code"] = change.error_code
    if change.next_attempt_at is not None or change.to.value == "retry":
        fields["next_attempt_at"] = change.next_attempt_at
    return fields


class ChangeGroup(msgspec.Struct, kw_only=True):
    """Delivery changes of one shape (same target state, expected states, attempt counting
    and set columns), applied by one statement: one UPDATE per change cost the store four
    times as much as the change itself in a large fan-out."""

    to: str
    expect: tuple[str, ...]
    count_attempt: bool
    #: The columns set from each change's values (besides state and updated_at).
    columns: tuple[str, ...]
    #: (index in the caller's list, delivery id, values of ``columns``)
    items: list[tuple[int, str, tuple[Any, ...]]] = msgspec.field(default_factory=list)


def change_groups(changes: Sequence[DeliveryChange], at: str) -> list[ChangeGroup]:
    """Changes grouped by shape, in rounds: a delivery named twice has its second change in
    the next round, so each delivery's changes still apply in the order given."""
    seen: dict[str, int] = {}
    rounds: list[dict[tuple[Any, ...], ChangeGroup]] = []
    for i, change in enumerate(changes):
        rnd = seen.get(change.delivery_id, 0)
        seen[change.delivery_id] = rnd + 1
        if rnd == len(rounds):
            rounds.append({})
        fields = change_fields(change, at)
        columns = tuple(k for k in fields if k not in ("state", "updated_at"))
        expect = tuple(sorted(s.value for s in change.expect))
        key = (change.to.value, expect, change.count_attempt, columns)
        group = rounds[rnd].get(key)
        if group is None:
            group = rounds[rnd][key] = ChangeGroup(
                to=change.to.value, expect=expect, count_attempt=change.count_attempt, columns=columns
            )
        group.items.append((i, change.delivery_id, tuple(fields[c] for c in columns)))
    return [group for groups in rounds for group in groups.values()]


NOTICE_UPSERT = (
    "INSERT INTO notices (notice_id, incident_id, template, channels, status, body, created_at, updated_at)"
    " VALUES ({}) ON CONFLICT (notice_id) DO UPDATE SET"
    " status = excluded.status, body = excluded.body, updated_at = excluded.updated_at"
)
COUNTS_SQL = "SELECT channel, state, count(*) FROM deliveries WHERE incident_id = {} GROUP BY channel, state"

# Deliveries due now, in priority order. One ordered, limited scan per state, merged: with
# ``state IN (...)`` both engines sort every waiting delivery on each round, which makes a
# fan-out of N deliveries cost N^2. Slots: per branch now, now, notice, notice, limit; then
# the overall limit.
_DUE_BRANCH = (
    "SELECT * FROM (SELECT {cols} FROM deliveries WHERE state = '{state}'"
    " AND (not_before IS NULL OR not_before <= {{{a}}})"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= {{{b}}})"
    " AND ({{{c}}} IS NULL OR notice_id = {{{d}}}) ORDER BY priority_rank, seq LIMIT {{{e}}}) AS due_{state}"
)
DUE_SQL = (
    _DUE_BRANCH.format(cols=DELIVERY_COLUMNS, state="planned", a=0, b=1, c=2, d=3, e=4)
    + " UNION ALL "
    + _DUE_BRANCH.format(cols=DELIVERY_COLUMNS, state="retry", a=5, b=6, c=7, d=8, e=9)
    + " ORDER BY priority_rank, seq LIMIT {10}"
)


TIMER_COLUMNS = "timer_id, incident_id, due_at, payload, state, claimed_by, claimed_until, fired_at"
# Insert, or (re-arm) make it pending again, keeping the earlier due time of a pending one.
TIMER_INSERT = f"INSERT INTO timers ({TIMER_COLUMNS}) VALUES ({{}}) ON CONFLICT (timer_id) DO "  # noqa: S608
TIMER_REARM = (
    "UPDATE SET due_at = CASE WHEN timers.state = 'pending' AND timers.due_at < excluded.due_at"
    " THEN timers.due_at ELSE excluded.due_at END, payload = excluded.payload, state = 'pending',"
    " claimed_by = NULL, claimed_until = NULL, fired_at = NULL"
)
# Due pending ones, and claims whose lease ran out (the instance holding them died).
TIMER_CLAIMABLE = (
    "SELECT timer_id FROM timers WHERE (state = 'pending' AND due_at <= {0})"
    " OR (state = 'claimed' AND claimed_until <= {0}) ORDER BY due_at LIMIT {1}"
)


def timer_of(row: Any) -> DueTimer:
    return DueTimer(
        timer_id=row[0], incident_id=row[1], due_at=row[2], payload=orjson.loads(row[3]), state=row[4],
        claimed_by=row[5], claimed_until=row[6], fired_at=row[7],
    )  # fmt: skip


def timer_values(t: DueTimer) -> tuple[Any, ...]:
    return (
        t.timer_id,
        t.incident_id,
        t.due_at,
        orjson.dumps(t.payload).decode(),
        "pending",
        None,
        None,
        None,
    )


# An incident's evaluation lease, a row of its own in the timers table (state 'lock' is never
# claimed as a timer): taken when free, expired, or already ours.
LOCK_TAKE = (
    "INSERT INTO timers (timer_id, incident_id, due_at, payload, state, claimed_by, claimed_until)"
    " VALUES ({0}, {1}, {2}, '{{}}', 'lock', {3}, {4}) ON CONFLICT (timer_id) DO UPDATE SET"
    " claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until"
    " WHERE timers.claimed_until <= excluded.due_at OR timers.claimed_by = excluded.claimed_by"
    " RETURNING timer_id"
)


# Per notice: deliveries not yet tried, and the earliest a held one (quiet hours) may go.
PENDING_BY_NOTICE = (
    "SELECT notice_id, count(*), min(not_before) FROM deliveries WHERE incident_id = {0}"  # noqa: S608
    f" AND state IN ({sql_list(*NOT_TRIED)}) GROUP BY notice_id"
)

# --- the fan-out under crashes ----------------------------------------------------------------

(CLAIMED,) = (s.value for s in RELEASABLE)
# Claims to release: every claim of owner {3} (it is stopping), else claims older than {2}
# (no live sender holds one that long: it claims what it sends within seconds), and claims of
# a sender that is gone (no lease reaching past {1}), claimed before {0} (a sender renews its
# lease before it claims, and this grace covers a claim made just before the first renewal).
RELEASABLE_WHERE = (
    f"state = '{CLAIMED}' AND"  # noqa: S608
    f" (claimed_by = {{3}} OR ({{3}} IS NULL AND (updated_at < {{2}}"
    " OR (updated_at < {0} AND NOT EXISTS (SELECT 1 FROM notify_senders s"
    " WHERE s.owner = deliveries.claimed_by AND s.alive_until > {1})))))"
)
# Deliveries whose carrier call started under a sender that is gone (no lease reaching past
# {0}; ``claimed_by`` stays set from the claim): the reconciler looks them up at once rather
# than after ``sending_timeout_s``.
ORPHANED_SENDING_WHERE = (
    f"state = {sql_list(S.sending)} AND NOT EXISTS (SELECT 1 FROM notify_senders s"  # noqa: S608
    " WHERE s.owner = deliveries.claimed_by AND s.alive_until > {0})"
)
SENDER_RENEW = (
    "INSERT INTO notify_senders (owner, alive_until, last_taken_at) VALUES ({0}, {1}, {2})"
    " ON CONFLICT (owner) DO UPDATE SET alive_until = excluded.alive_until,"
    " last_taken_at = coalesce(excluded.last_taken_at, notify_senders.last_taken_at)"
)
SENDERS_FORGET = "DELETE FROM notify_senders WHERE alive_until < {0}"


def day_before(at: str) -> str:
    """Leases that ran out longer ago than this are forgotten."""
    return isoformat(datetime.fromisoformat(at) - timedelta(days=1))


# When the oldest due delivery became due (its retry time, the end of its quiet hours, or when
# it was approved or put back). Read through the state index: the due ones, not every row.
OLDEST_DUE = (
    "SELECT min(coalesce(next_attempt_at, not_before, updated_at)) FROM deliveries"  # noqa: S608
    f" WHERE state IN ({sql_list(*SENDABLE)}) AND (not_before IS NULL OR not_before <= {{0}})"
    " AND (next_attempt_at IS NULL OR next_attempt_at <= {0})"
)
LAST_TAKEN = "SELECT max(last_taken_at) FROM notify_senders"
AWAITING_FINAL_WHERE = (
    f"state IN ({sql_list(*AWAITING_FINAL)}) AND channel <> '{NO_RECEIPTS}' AND carrier_sid IS NOT NULL"
    " AND updated_at < {0} ORDER BY updated_at LIMIT {1}"
)
INBOUND_FORGET = "DELETE FROM inbound_messages WHERE message_sid = {0}"
RELEASED = "released: its sender stopped before the carrier call"
INBOUND_RECORD = (
    "INSERT INTO inbound_messages (message_sid, received_at) VALUES ({0}, {1})"
    " ON CONFLICT (message_sid) DO NOTHING RETURNING message_sid"
)


# --- idempotency keys of the HTTP API --------------------------------------------------------

IDEMPOTENCY_COLUMNS = "scope, key, body_sha256, state, status, response, guard, created_at, updated_at"


def idempotency_values(r: IdempotencyRecord) -> tuple[Any, ...]:
    return (r.scope, r.key, r.body_sha256, r.state, r.status, r.response, r.guard, r.created_at, r.updated_at)


def idempotency_of(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=row[0], key=row[1], body_sha256=row[2], state=row[3], status=row[4], response=row[5],
        guard=row[6], created_at=row[7], updated_at=row[8],
    )  # fmt: skip


# --- self-enrolments ----------------------------------------------------------------------

ENROLMENT_COLUMNS = (
    "enrolment_id, client_key, contact_key, pending, code_digest, expires_at, tries, status, created_at,"
    " account_id"
)


def enrolment_values(e: Enrolment) -> tuple[Any, ...]:
    return (e.enrolment_id, e.client_key, e.contact_key, msgspec.json.encode(e.pending).decode(),
            e.code_digest, e.expires_at, e.tries, e.status, e.created_at, e.account_id)  # fmt: skip


_NO_PENDING = Pending(address="", lon=0.0, lat=0.0, language="")


def enrolment_of(row: Any) -> Enrolment:
    pending = msgspec.json.decode(row[3], type=Pending) if row[3] != "{}" else _NO_PENDING
    return Enrolment(
        enrolment_id=row[0], client_key=row[1], contact_key=row[2], pending=pending, code_digest=row[4],
        expires_at=row[5], tries=int(row[6]), status=row[7], created_at=row[8], account_id=row[9],
    )  # fmt: skip


def admission(
    by_client: tuple[int, str | None],
    by_contact: tuple[int, str | None],
    limits: EnrolmentLimits,
    in_all: tuple[int, str | None] = (0, None),
) -> Admission:
    """Whether a sign-up fits under every limit, from (count, oldest) per client, per contact
    and of the whole service in the last hour."""
    if by_client[0] >= limits.per_client:
        return Admission(admitted=False, limit="client", oldest=by_client[1])
    if by_contact[0] >= limits.per_contact:
        return Admission(admitted=False, limit="contact", oldest=by_contact[1])
    if limits.per_hour and in_all[0] >= limits.per_hour:
        return Admission(admitted=False, limit="service", oldest=in_all[1])
    return Admission(admitted=True)


#: Every sign-up of the last hour, whatever its client and contact: (count, oldest).
ENROLMENT_COUNT_ALL = "SELECT count(*), min(created_at) FROM enrolments WHERE created_at >= {}"


#: Counted per client and per contact: (count, oldest created_at) of the window.
ENROLMENT_COUNT = "SELECT count(*), min(created_at) FROM enrolments WHERE {} = {} AND created_at >= {}"
#: The confirmed sign-up of a household whose link works: confirming another one for the
#: same household marks the older ones replaced (first, in the same transaction), and only
#: if the new one is still pending.
CURRENT_ENROLMENT = (
    "SELECT enrolment_id FROM enrolments WHERE account_id = {} AND status = 'confirmed'"
    " ORDER BY created_at DESC LIMIT 1"
)
REPLACE_ENROLMENTS = (
    "UPDATE enrolments SET status = 'replaced' WHERE account_id = {0} AND status = 'confirmed'"
    " AND EXISTS (SELECT 1 FROM enrolments WHERE enrolment_id = {1} AND status = 'pending')"
)
#: The households a signed link may remove: self-enrolled ones only.
SELF_ENROLLED = "source = 'self'"


def self_update(marks: Sequence[str]) -> str:
    """UPDATE of every column of a self-enrolled household (never an insert: a household
    removed meanwhile stays removed), for values in :func:`self_update_values` order."""
    columns = [c.strip() for c in HOUSEHOLD_COLUMNS.split(",")][1:]
    sets = ", ".join(f"{column} = {mark}" for column, mark in zip(columns, marks, strict=False))
    return f"UPDATE households SET {sets} WHERE account_id = {marks[len(columns)]} AND {SELF_ENROLLED}"  # noqa: S608


def self_update_values(household: Household, now: str) -> tuple[Any, ...]:
    row = upsert_rows([household], {}, now)[0][0]
    return (*row[1:], row[0])
