"""Versioned schema migrations, applied in order at start-up; one entry per version.

Each migration has a SQLite and a PostgreSQL form. Never edit a released migration:
add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: str
    postgres: str


_V1_COMMON = """
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    declared_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX incidents_by_status ON incidents (status, declared_at);
CREATE TABLE timeline_events (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (incident_id, seq)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="incidents and the append-only timeline",
        sqlite=_V1_COMMON
        + """
CREATE TRIGGER timeline_events_no_update BEFORE UPDATE ON timeline_events
BEGIN SELECT RAISE(ABORT, 'timeline events are append-only'); END;
CREATE TRIGGER timeline_events_no_delete BEFORE DELETE ON timeline_events
BEGIN SELECT RAISE(ABORT, 'timeline events are append-only'); END;
""",
        postgres=_V1_COMMON
        + """
CREATE FUNCTION timeline_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'timeline events are append-only'; END $$;
CREATE TRIGGER timeline_events_append_only BEFORE UPDATE OR DELETE ON timeline_events
FOR EACH ROW EXECUTE FUNCTION timeline_events_append_only();
""",
    ),
)

_V2_REPORTS = """
CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    utility TEXT NOT NULL,
    severity TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    lon DOUBLE PRECISION,
    lat DOUBLE PRECISION,
    asset_type TEXT,
    asset_id TEXT,
    body TEXT NOT NULL,
    origin TEXT NOT NULL,
    status TEXT NOT NULL,
    incident_id TEXT REFERENCES incidents (id),
    note TEXT,
    triaged_by TEXT
);
CREATE INDEX reports_by_status ON reports (status, received_at);
CREATE INDEX reports_by_incident ON reports (incident_id);
"""

MIGRATIONS += (Migration(version=2, name="reports and triage", sqlite=_V2_REPORTS, postgres=_V2_REPORTS),)

_V3_HOUSEHOLDS = """
CREATE TABLE households (
    account_id TEXT PRIMARY KEY,
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    address TEXT NOT NULL,
    language TEXT NOT NULL,
    sms TEXT NOT NULL,
    voice TEXT NOT NULL,
    app_token TEXT NOT NULL,
    priority TEXT,
    opt_out TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

MIGRATIONS += (
    Migration(version=3, name="household registry", sqlite=_V3_HOUSEHOLDS, postgres=_V3_HOUSEHOLDS),
)

_V4_NOTICES = """
CREATE TABLE notices (
    notice_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    template TEXT NOT NULL,
    channels TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX notices_by_incident ON notices (incident_id, created_at);
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    notice_id TEXT NOT NULL REFERENCES notices (notice_id),
    incident_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    account_id TEXT NOT NULL,
    language TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    carrier_sid TEXT,
    error_code TEXT,
    not_before TEXT,
    next_attempt_at TEXT,
    fallback_of TEXT,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX deliveries_once ON deliveries (notice_id, channel, address);
CREATE INDEX deliveries_by_sid ON deliveries (carrier_sid);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_incident ON deliveries (incident_id, channel, state);
CREATE TABLE delivery_events (
    delivery_id TEXT NOT NULL,
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX delivery_events_by_delivery ON delivery_events (delivery_id, at);
"""

MIGRATIONS += (Migration(version=4, name="notices and deliveries", sqlite=_V4_NOTICES, postgres=_V4_NOTICES),)

_V5_OPT_OUTS = """
CREATE TABLE opt_outs (
    address TEXT NOT NULL,
    channel TEXT NOT NULL,
    opted_out BOOLEAN NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (address, channel)
);
CREATE INDEX opt_outs_by_channel ON opt_outs (channel, opted_out);
CREATE INDEX deliveries_by_address ON deliveries (address);
"""

MIGRATIONS += (
    Migration(
        version=5, name="opt-outs by reply; deliveries by address", sqlite=_V5_OPT_OUTS, postgres=_V5_OPT_OUTS
    ),
)

_V6_DUE = """
CREATE INDEX deliveries_due_in_order ON deliveries (state, priority_rank, seq);
"""

MIGRATIONS += (
    Migration(version=6, name="deliveries due in priority order", sqlite=_V6_DUE, postgres=_V6_DUE),
)

# Every state change of a delivery rewrites each index that holds its state; this one is
# covered by deliveries_due_in_order (same leading column) and only cost fan-out time.
_V7_DROP_DUE = """
DROP INDEX deliveries_due;
"""

MIGRATIONS += (
    Migration(version=7, name="drop a redundant delivery index", sqlite=_V7_DROP_DUE, postgres=_V7_DROP_DUE),
)

# Durable timers of playbooks: reminders, ETR cadences, SLA deadlines, wake-ups. A row is
# claimed for a lease (PostgreSQL: SKIP LOCKED, so each fires on one instance), then done.
_V8_TIMERS = """
CREATE TABLE timers (
    timer_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    due_at TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'pending',
    claimed_by TEXT,
    claimed_until TEXT,
    fired_at TEXT
);
CREATE INDEX timers_due ON timers (state, due_at);
CREATE INDEX timers_by_incident ON timers (incident_id, state);
"""

MIGRATIONS += (Migration(version=8, name="durable timers", sqlite=_V8_TIMERS, postgres=_V8_TIMERS),)

# Idempotency keys of the HTTP API (see incident.api.idempotency): one row per caller, route and
# key, holding the first answer. Version 9 is left to a change made alongside; the runners apply
# every version not yet recorded, so a gap (or a lower version added later) is applied too.
_V10_IDEMPOTENCY = """
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    guard TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
"""

MIGRATIONS += (
    Migration(version=10, name="idempotency keys", sqlite=_V10_IDEMPOTENCY, postgres=_V10_IDEMPOTENCY),
)

# The fan-out under crashes (version 11; 9 and 10 are other changes of the same release, and
# the runner applies any version it has not applied, so the order of merging does not matter):
# - deliveries.claimed_by: the sender instance holding a `claimed` delivery (no carrier call
#   started yet). Not among the columns a Delivery reads: only claiming and releasing use it.
# - notify_senders: each sending instance's lease, renewed every second, and when it last took
#   a delivery (the fan-out's health across instances). Claims of an instance whose lease ran
#   out are released, those of a live one never.
# - inbound_messages: the MessageSids of inbound SMS already handled (a replay changes nothing).
_V11_FANOUT = """
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
CREATE TABLE notify_senders (
    owner TEXT PRIMARY KEY,
    alive_until TEXT NOT NULL,
    last_taken_at TEXT
);
CREATE TABLE inbound_messages (
    message_sid TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
"""

MIGRATIONS += (
    Migration(
        version=11,
        name="fan-out claims, sender leases, inbound SMS seen",
        sqlite=_V11_FANOUT,
        postgres=_V11_FANOUT,
    ),
)

# Version 12: the orders the paged lists read in (newest first, with the id as tie-breaker),
# so a page further down costs what the first one does, whatever the status filter.
_V12_PAGING = """
CREATE INDEX incidents_by_declared ON incidents (declared_at, id);
CREATE INDEX reports_by_received ON reports (received_at, report_id);
"""

MIGRATIONS += (
    Migration(version=12, name="indexes for paged lists", sqlite=_V12_PAGING, postgres=_V12_PAGING),
)

# Version 13: households reachable by email, with their needs, and self-enrolled ones kept
# apart from the billing import (source 'self' rows are never overwritten by a file row).
# priority_confirmed: 0 while a self-enrolled medical priority awaits the utility.
_V13_RESIDENTS = """
ALTER TABLE households ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE households ADD COLUMN source TEXT NOT NULL DEFAULT 'file';
ALTER TABLE households ADD COLUMN needs TEXT NOT NULL DEFAULT '';
ALTER TABLE households ADD COLUMN priority_confirmed INTEGER NOT NULL DEFAULT 1;
"""

MIGRATIONS += (
    Migration(
        version=13,
        name="households: email, source, needs, priority confirmed",
        sqlite=_V13_RESIDENTS,
        postgres=_V13_RESIDENTS,
    ),
)

# Version 15: self-enrolment with double opt-in (see incident.intake.enrolment). A sign-up
# waits here, with its code as a keyed hash, until it is confirmed (its household is then in
# the registry) or dies (expired, too many tries). Contacts and client addresses are kept
# only as keyed hashes, counted for the rate limits of every instance.
_V15_ENROLMENTS = """
CREATE TABLE enrolments (
    enrolment_id TEXT PRIMARY KEY,
    client_key TEXT NOT NULL,
    contact_key TEXT NOT NULL,
    pending TEXT NOT NULL,
    code_digest TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    account_id TEXT
);
CREATE INDEX enrolments_by_client ON enrolments (client_key, created_at);
CREATE INDEX enrolments_by_contact ON enrolments (contact_key, created_at);
CREATE INDEX enrolments_by_age ON enrolments (created_at);
"""

MIGRATIONS += (
    Migration(version=15, name="self-enrolments", sqlite=_V15_ENROLMENTS, postgres=_V15_ENROLMENTS),
)

# Version 20: a signed link names the confirmed sign-up it came from, and works only while
# that is its household's newest (incident.intake.enrolment): found by account.
_V20_ENROLMENT_LINKS = """
CREATE INDEX enrolments_by_account ON enrolments (account_id, created_at);
"""

MIGRATIONS += (
    Migration(
        version=20, name="enrolments by household", sqlite=_V20_ENROLMENT_LINKS, postgres=_V20_ENROLMENT_LINKS
    ),
)

LATEST = max(m.version for m in MIGRATIONS)
