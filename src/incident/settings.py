"""Typed, frozen settings built once from a TOML file plus ``INCIDENT_<SECTION>__<KEY>``.

Only :func:`load_settings` looks at the environment, and only at the mapping it is given.
``config/default.toml`` documents every key; a test keeps it equal to the defaults here.

Paths: ``bundled:NAME`` is a file shipped inside the package (``incident/bundled/NAME``: the
notice templates, playbooks, on-call example, sample service area and drill scenarios), so the
defaults work from a wheel in any working directory. A relative path written in a config file
is relative to that file's folder; one from the environment, or a default such as
``var/tokens.toml``, to the working directory.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from incident.core.domain import Kind, Severity
from incident.core.errors import ConfigError

ENV_PREFIX = "INCIDENT_"

#: Files shipped with the package (package data), named ``bundled:<path below here>``.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_PREFIX = "bundled:"

#: (section, key) of every setting that names a file or folder.
PATH_KEYS: frozenset[tuple[str, str]] = frozenset(
    {
        ("auth", "tokens_file"),
        ("area", "households"),
        ("area", "layers"),
        ("area", "network"),
        ("area", "valves"),
        ("notify", "templates"),
        ("playbooks", "dir"),
        ("playbooks", "oncall"),
    }
)


def bundled(value: str) -> str:
    """``bundled:NAME`` as the path of the shipped file; any other value unchanged."""
    if not value.startswith(BUNDLED_PREFIX):
        return value
    name = value.removeprefix(BUNDLED_PREFIX).strip("/")
    target = (BUNDLED_DIR / name).resolve()
    if not target.is_relative_to(BUNDLED_DIR):
        raise ValueError(f"{value!r} points outside the bundled files")
    return str(target)


def _resolve_bundled(struct: msgspec.Struct, section: str) -> None:
    """Frozen structs resolve ``bundled:`` once, when built: every user sees a real path."""
    for sec, key in PATH_KEYS:
        if sec == section:
            msgspec.structs.force_setattr(struct, key, bundled(getattr(struct, key)))


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]


class HttpSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    #: Largest accepted request body; larger ones get 413.
    max_body_bytes: Positive = 1_048_576
    #: Seconds that in-flight requests get to finish at shutdown.
    shutdown_timeout: PositiveFloat = 10.0
    #: Deepest nesting of arrays and objects in a JSON body; deeper ones get 400 too_deep.
    max_json_depth: Positive = 32
    #: Seconds a request holding an Idempotency-Key keeps its hold without refreshing it (it
    #: refreshes every quarter of this); a hold older than this belongs to a request that died.
    idempotency_lease_s: PositiveFloat = 60.0


class StoreSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str = "sqlite:///var/incident.db"
    #: Connections in the PostgreSQL pool.
    pool_size: Positive = 10
    #: Seconds a store call keeps retrying transient database errors (connection lost, server
    #: restarting, serialization failure, SQLite busy) before it fails with a retryable error.
    retry_budget_s: NonNegativeFloat = 10.0

    def __post_init__(self) -> None:
        if not (self.url.startswith("sqlite:///") or self.url.startswith(("postgresql://", "postgres://"))):
            raise ValueError("url must start with sqlite:///PATH or postgresql://")


class KafkaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Comma-separated host:port list; empty starts the embedded broker.
    bootstrap_servers: str = ""
    #: Where the embedded broker listens (port 0: any free port; the CLI needs a fixed one).
    embedded_listener: str = "127.0.0.1:19092"
    reports_topic: str = "utility.reports"
    dead_letter_topic: str = "utility.reports.dlq"
    partitions: Positive = 6
    group_id: str = "incident-ingest"
    #: Run the report consumer in this instance (false: an API-only instance).
    consume_reports: bool = True
    #: Consumer group session timeout and heartbeat against a cluster; the embedded broker
    #: always uses 2000/300 ms (it holds each JoinGroup for half the session timeout).
    session_timeout_ms: Positive = 10_000
    heartbeat_interval_ms: Positive = 3_000
    #: Reports taken from Kafka per store transaction.
    batch_size: Positive = 500
    #: Larger report messages go to the dead-letter topic.
    max_report_bytes: Positive = 65_536
    #: /healthz answers 503 naming ``ingest`` when ingest has made no progress for this long
    #: while messages wait (lag, or a batch in hand: e.g. a dead-letter topic that refuses).
    stall_after_s: PositiveFloat = 60.0

    def __post_init__(self) -> None:
        host, sep, port = self.embedded_listener.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("embedded_listener must be HOST:PORT")


class AutoDeclareRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A report of ``kind`` at ``min_severity`` or above opens an incident by itself."""

    kind: Kind
    min_severity: Severity = Severity.low
    #: True: the incident waits for a dispatcher to confirm it.
    confirm: bool = False


def _default_compatible() -> dict[Kind, list[Kind]]:
    water_supply = [Kind.main_break, Kind.unplanned_outage, Kind.low_pressure]
    return {
        Kind.main_break: water_supply,
        Kind.unplanned_outage: water_supply,
        Kind.low_pressure: water_supply,
        Kind.contamination: [Kind.contamination, Kind.main_break],
        Kind.gas_leak: [Kind.gas_leak],
        Kind.heat_outage: [Kind.heat_outage],
        Kind.planned_outage: [Kind.planned_outage, Kind.low_pressure, Kind.unplanned_outage],
    }


def _default_rules() -> list[AutoDeclareRule]:
    return [
        AutoDeclareRule(kind=Kind.gas_leak, min_severity=Severity.low, confirm=False),
        AutoDeclareRule(kind=Kind.contamination, min_severity=Severity.high, confirm=True),
    ]


class CorrelationSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: A report this close (metres) to an open incident's report or area may join it.
    distance_m: Annotated[float, msgspec.Meta(ge=0)] = 500.0
    #: ... if observed within this many minutes of that incident's reports.
    window_minutes: Positive = 360
    #: Report kind -> incident kinds it may join (same utility only).
    compatible: dict[Kind, list[Kind]] = msgspec.field(default_factory=_default_compatible)
    auto_declare: list[AutoDeclareRule] = msgspec.field(default_factory=_default_rules)


class CarrierSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    mode: Literal["drill", "twilio"] = "drill"


class TwilioSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_base_url: str = "https://api.twilio.com"
    public_base_url: str = ""
    messages_per_second: PositiveFloat = 10.0
    calls_per_second: PositiveFloat = 1.0


class PushSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: The push gateway's send URL (FCM HTTP v1 shape, e.g.
    #: https://fcm.googleapis.com/v1/projects/PROJECT/messages:send); empty: no app push
    #: (in drill mode the drill carrier stands in).
    url: str = ""
    #: Bearer token for the gateway.
    token: str = ""


class EmailSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The SMTP server notices are sent through; empty ``host``: no email channel."""

    host: str = ""
    #: 25 / 587 (starttls) / 465 (tls).
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    #: none: plain (a relay on a trusted network); starttls: upgrade after connecting;
    #: tls: TLS from the first byte (implicit TLS, port 465).
    tls: Literal["none", "starttls", "tls"] = "starttls"
    user: str = ""
    password: str = ""
    #: The sender, e.g. "Riverside Water <alerts@riverside.example>" or just the address.
    from_address: str = ""
    #: Seconds for each step of talking to the server.
    timeout: PositiveFloat = 30.0
    #: Messages per second to the server, for the whole cluster.
    messages_per_second: PositiveFloat = 20.0
    #: Connections open to the server at once, per instance.
    connections: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4

    @property
    def configured(self) -> bool:
        return bool(self.host)


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tokens_file: str = "var/tokens.toml"
    #: Seconds between looks at the tokens file: a token added or removed with
    #: ``incident tokens add`` is in force within twice this (a change is read once it has
    #: stayed for one look), without a restart. At most 5: the README promises 10 s.
    reload_s: Annotated[float, msgspec.Meta(gt=0, le=5)] = 2.0


class AreaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    households: str = "bundled:sample/households.csv"
    layers: str = "bundled:sample/layers"
    network: str = "bundled:sample/network.inp"
    valves: str = "bundled:sample/valves.csv"
    crs: str = ""
    #: How far (metres) a household may be from its pipe to be attached to it.
    service_distance_m: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    #: Width (metres) of the band drawn around the pipes an isolation leaves dry.
    isolation_buffer_m: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    #: Most vertices in a drawn area (all its rings together); more is 422 area_too_complex.
    max_vertices: Positive = 10_000
    #: Most parts (added or removed) in an incident's area; more is 422 area_too_many_parts.
    max_parts: Positive = 20
    #: Seconds an area change or a pipe look-up may compute (in a worker thread, off the
    #: event loop) before it is answered with 422 area_too_complex.
    compute_timeout_s: PositiveFloat = 5.0
    #: Region (ISO 3166, e.g. "CN") of phone numbers written without "+" and a country code
    #: ("0577 8812 3456"); empty: households files must give E.164 numbers.
    default_region: str = ""
    #: Seconds between looks at the household registry: households imported with
    #: ``incident households import`` are in the service area this soon (plus the rebuild).
    reload_s: Annotated[float, msgspec.Meta(gt=0, le=5)] = 3.0

    def __post_init__(self) -> None:
        import phonenumbers

        _resolve_bundled(self, "area")

        if self.default_region and self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"default_region {self.default_region!r} is not a region code phonenumbers knows "
                "(ISO 3166, e.g. CN, US, GB)"
            )


class NotifySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Folder of templates/notices/<language>/<key>.<channel>.j2
    templates: str = "bundled:templates/notices"
    #: Language used when a household's language has no template.
    default_language: str = "en"
    #: Time zone in which households read times (ETR, planned start/end) and quiet hours run.
    timezone: str = "UTC"
    #: Local times during which non-urgent notices wait (e.g. "21:00-07:00"); empty: none.
    quiet_hours: str = "21:00-07:00"
    #: An SMS longer than this many segments gets a warning in the preview.
    max_segments: Positive = 3
    #: Largest rendered notice, in bytes.
    max_chars: Positive = 4096
    #: Who the notices come from.
    utility_name: str = "Sampletown Water"
    utility_phone: str = "+1 555 0100"
    utility_url: str = "https://sampletown.example/outages"
    #: Run the fan-out (outbox, senders, reconciler) in this instance.
    send: bool = True
    #: Kafka topic of notify jobs (partitioned by household) and its consumer group.
    jobs_topic: str = "utility.notify.jobs"
    group_id: str = "incident-notify"
    #: Tries per delivery for passing failures (429, 5xx, timeouts), with jittered backoff.
    max_attempts: Positive = 5
    retry_base_s: PositiveFloat = 2.0
    #: Voice calls at once (carriers cap concurrent calls).
    max_concurrent_calls: Positive = 10
    #: A job not taken after this long is published again (the broker may have lost it).
    requeue_s: PositiveFloat = 30.0
    #: A send whose carrier call started and whose answer is not recorded after this long is
    #: looked up at the carrier (longer than a carrier call may take: 15 s).
    sending_timeout_s: PositiveFloat = 30.0
    #: A sending instance's lease, renewed four times as often: when an instance dies, the
    #: deliveries it had claimed (carrier call not started) are released this soon after.
    sender_lease_s: Annotated[float, msgspec.Meta(ge=1.0)] = 5.0
    #: A delivery the carrier has (accepted, sent, ringing, answered) with no final status
    #: after this long is looked up at the carrier by its SID (the callback may have been lost).
    finality_after_s: PositiveFloat = 600.0
    #: The fan-out counts as stalled (in /healthz) when deliveries have been due this long and
    #: no instance has taken one for as long.
    stall_after_s: PositiveFloat = 60.0
    #: Voice no-answer/busy: try again this many times, this many minutes apart.
    voice_retries: Annotated[int, msgspec.Meta(ge=0)] = 2
    voice_retry_minutes: PositiveFloat = 10.0
    #: An SMS to a landline or an undelivered SMS becomes a voice call.
    sms_fallback_to_voice: bool = True
    #: People who must approve a notice of a live incident before it goes: 2 is the
    #: two-person rule (a second, different dispatcher or admin; drills need one).
    approvals_required: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        _resolve_bundled(self, "notify")

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone") from None
        if self.quiet_hours.strip():
            first, sep, second = self.quiet_hours.partition("-")
            try:
                time.fromisoformat(first.strip())
                time.fromisoformat(second.strip())
            except ValueError:
                sep = ""
            if not sep:
                raise ValueError(f"quiet_hours must look like 21:00-07:00, not {self.quiet_hours!r}")


class LiveSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Events a live client may fall behind by before it is dropped.
    client_queue: Positive = 1000
    #: Bridge the live feed between instances through Kafka, so a console connected to one
    #: instance sees what the others do (the fan-out on a worker, ingest on another API pod).
    #: auto: on against a Kafka cluster ([kafka] bootstrap_servers), off with the embedded
    #: broker (one machine, one instance).
    bridge: Literal["auto", "on", "off"] = "auto"
    #: The topic the instances share (one partition).
    topic: str = "incident.live"


class LogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ConsoleSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Optional map tiles under the service area, e.g. "https://tiles.example/{z}/{x}/{y}.png";
    #: empty: none (the zones and pipes are the base map, and the console works offline).
    tile_url: str = ""
    #: The attribution the tile provider asks for, shown on the map.
    tile_attribution: str = ""

    def __post_init__(self) -> None:
        if self.tile_url and not (
            self.tile_url.startswith(("https://", "http://"))
            and all(f"{{{k}}}" in self.tile_url for k in "zxy")
        ):
            raise ValueError("tile_url must be empty or an http(s) URL with {z}, {x} and {y}")


class PlaybookSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Run playbooks in this instance (several instances share the work through the store).
    enabled: bool = True
    #: Folder of playbook files (YAML); checked at start, an error stops start-up.
    dir: str = "bundled:playbooks"
    #: On-call rotas that pages and SLA escalations text; empty: pages are only recorded.
    oncall: str = "bundled:oncall.toml"
    #: How long one instance holds an incident's evaluation or a claimed timer.
    lease_s: PositiveFloat = 120.0
    #: How often sent notices are checked for being handed over, and timers polled.
    poll_s: PositiveFloat = 2.0
    #: Every open incident is looked at again this often (a trigger lost in a crash is found).
    sweep_s: PositiveFloat = 60.0

    def __post_init__(self) -> None:
        _resolve_bundled(self, "playbooks")


class IncidentSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Seconds an ETR may lie in the past when it is set (a time just gone while typing).
    etr_grace_s: NonNegativeFloat = 900.0
    #: Days an ETR may lie ahead; further is refused as a typo (a wrong year or month).
    etr_horizon_days: PositiveFloat = 30.0


class EnrolmentSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Residents signing themselves up (``/public/signup``, double opt-in by a one-time code)."""

    #: Residents may sign up (the routes answer 404 when false).
    enabled: bool = True
    #: Signs the links that change or remove a sign-up, and keys the stored code hashes. Empty:
    #: a random secret made once per database and kept in it (every instance shares it);
    #: `incident init` writes one here. Changing it ends every link given out.
    secret: str = ""
    #: Sign-ups from one client address (IPv6: its /64) and to one phone number or email
    #: address within ``window_s`` seconds; more get 429 with Retry-After.
    per_client: Positive = 10
    per_contact: Positive = 3
    window_s: Positive = 3600
    #: Days a link to change or remove a sign-up works.
    link_days: Positive = 365
    #: Regions (ISO 3166, e.g. ["US", "CA"]) whose mobile numbers may sign up, besides
    #: ``[area] default_region``; with neither, residents sign up by email only.
    allowed_regions: list[str] = msgspec.field(default_factory=list)
    #: Codes sent per hour by the whole service (every instance: counted in the store); more
    #: sign-ups get 429, a warning in the log and ``incident_enrolments_refused{limit="service"}``.
    codes_per_hour: Positive = 200

    def __post_init__(self) -> None:
        import phonenumbers

        for region in self.allowed_regions:
            if region not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(
                    f"allowed_regions: {region!r} is not a region code phonenumbers knows "
                    "(ISO 3166, e.g. CN, US, GB)"
                )


class PublicSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The residents' side (``/public``): no token, so every limit here faces the internet."""

    #: "Is my address affected?": a point this many metres or less from an area is "near".
    near_m: Annotated[float, msgspec.Meta(ge=0, le=5000)] = 250.0
    #: The open public incidents are read from the store at most this often per instance
    #: (this instance's own changes show at once).
    cache_s: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0
    #: Requests per minute one client address may make to /public/api (0: no limit).
    requests_per_minute: Annotated[int, msgspec.Meta(ge=0)] = 120
    #: Addresses of our own reverse proxies: behind one, the client is the nearest
    #: X-Forwarded-For address that is not one of them (else every resident shares one budget).
    trusted_proxies: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an address or network (e.g. 10.0.0.1, 10.0.0.0/8)"
                ) from None


class FeedSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The public feeds (``/public/feeds``: CAP in Atom, outages as GeoJSON): no token, built
    once per change of a public incident and kept in memory."""

    #: ``Cache-Control: max-age`` of the feeds and their alerts (seconds).
    max_age_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 60
    #: The store is asked whether a public incident changed at most this often per instance
    #: (this instance's own changes show at once; others' within this).
    recheck_s: Annotated[float, msgspec.Meta(ge=0, le=300)] = 5.0
    #: A closed or cancelled incident's alerts, ending in its Cancel, stay this long in the CAP feed.
    closed_hours: Annotated[float, msgspec.Meta(gt=0, le=720)] = 48.0
    #: The feeds' public address for their links (e.g. ``https://outages.example``); empty: the
    #: carrier's ``[twilio] public_base_url``, else links relative to the feed.
    base_url: str = ""
    #: Build the feeds on every request instead (a benchmark's baseline; never in service).
    cache: bool = True


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    correlation: CorrelationSettings = msgspec.field(default_factory=CorrelationSettings)
    incidents: IncidentSettings = msgspec.field(default_factory=IncidentSettings)
    carrier: CarrierSettings = msgspec.field(default_factory=CarrierSettings)
    twilio: TwilioSettings = msgspec.field(default_factory=TwilioSettings)
    push: PushSettings = msgspec.field(default_factory=PushSettings)
    email: EmailSettings = msgspec.field(default_factory=EmailSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    area: AreaSettings = msgspec.field(default_factory=AreaSettings)
    notify: NotifySettings = msgspec.field(default_factory=NotifySettings)
    playbooks: PlaybookSettings = msgspec.field(default_factory=PlaybookSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)
    enrolment: EnrolmentSettings = msgspec.field(default_factory=EnrolmentSettings)
    public: PublicSettings = msgspec.field(default_factory=PublicSettings)
    feeds: FeedSettings = msgspec.field(default_factory=FeedSettings)


def _section_types() -> dict[str, type[msgspec.Struct]]:
    return {f.name: f.type for f in msgspec.structs.fields(Settings)}


_PATH = re.compile(r"^(?P<msg>.*) - at `\$\.(?P<section>\w+)(?:\.(?P<key>\w+))?`$")


def _explain(err: msgspec.ValidationError, sources: Mapping[tuple[str, str], str], file: str) -> str:
    m = _PATH.match(str(err))
    if not m:
        return f"{file}: {err}"
    section, key, msg = m["section"], m["key"], m["msg"]
    unknown = re.match(r"Object contains unknown field `(\w+)`", msg)
    if unknown and key is None:
        return f"{file}: [{section}] unknown key '{unknown[1]}'"
    if key is None:
        # __post_init__ checks fail on the whole section: name every source that fed it.
        where = sorted({src for (sec, _), src in sources.items() if sec == section}) or [file]
        return f"{' / '.join(where)}: [{section}] {msg}"
    return f"{sources.get((section, key), file)}: [{section}] {key}: {msg}"


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], str]]:
    sections = _section_types()
    values: dict[str, dict[str, Any]] = {}
    sources: dict[tuple[str, str], str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"environment {name}: unknown section [{section}]")
        fields = {f.name: f.type for f in msgspec.structs.fields(sections[section])}
        if key not in fields:
            raise ConfigError(f"environment {name}: unknown key '{key}' in [{section}]")
        try:
            # A list (e.g. [public] trusted_proxies) comes as JSON: '["10.0.0.1", "10.0.0.2"]'.
            given: Any = msgspec.json.decode(raw) if raw.lstrip().startswith("[") else raw
            value = msgspec.convert(given, fields[key], strict=False)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise ConfigError(f"environment {name}: {err}") from err
        values.setdefault(section, {})[key] = value
        sources[(section, key)] = f"environment {name}"
    return values, sources


#: Environment variables that start with INCIDENT_ and are not settings: the CLI's own
#: (``drill run --token``) and the test suite's. Anything else with the prefix is a warning.
NOT_SETTINGS = frozenset({"INCIDENT_TOKEN", "INCIDENT_TEST_POSTGRES_URL", "INCIDENT_SCREENSHOTS"})


def _suggest(rest: str) -> str | None:
    """INCIDENT_HTTP_PORT -> INCIDENT_HTTP__PORT, when some spelling matches a key."""
    sections = _section_types()
    lowered = rest.lower()
    for section, struct in sections.items():
        for key in (f.name for f in msgspec.structs.fields(struct)):
            if lowered.replace("_", "") == (section + key).replace("_", ""):
                return f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
    return None


def environment_warnings(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``INCIDENT_*`` variable that sets nothing (e.g. one underscore
    where two are needed), with the right spelling when one is near."""
    out: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" in name or name in NOT_SETTINGS:
            continue
        hint = _suggest(name[len(ENV_PREFIX) :])
        fix = (
            f"did you mean {hint}?"
            if hint
            else f"settings are {ENV_PREFIX}<SECTION>__<KEY> (two underscores)"
        )
        out.append(f"environment {name} sets nothing and is ignored: {fix}")
    return out


def _cross_checks(settings: Settings, sources: Mapping[tuple[str, str], str], file: str) -> None:
    """Checks that span keys (or sections), so that a setting that passes `incident config`
    does not stop the service at start."""
    if settings.carrier.mode == "twilio":
        t = settings.twilio
        missing = [
            k for k in ("account_sid", "auth_token", "from_number", "public_base_url") if not getattr(t, k)
        ]
        if missing:
            raise ConfigError(
                f'{file}: [carrier] mode = "twilio" needs [twilio] {", ".join(missing)} '
                f'(e.g. INCIDENT_TWILIO__{missing[0].upper()}); or use mode = "drill"'
            )
        if not t.public_base_url.startswith(("https://", "http://")):
            where = sources.get(("twilio", "public_base_url"), file)
            raise ConfigError(
                f"{where}: [twilio] public_base_url must be the http(s) URL where Twilio reaches this service"
            )
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", t.from_number):
            where = sources.get(("twilio", "from_number"), file)
            raise ConfigError(f"{where}: [twilio] from_number must be an E.164 number (+ and digits)")
    _email_checks(settings.email, sources, file)


def _email_checks(e: EmailSettings, sources: Mapping[tuple[str, str], str], file: str) -> None:
    def where(key: str) -> str:
        return sources.get(("email", key), file)

    if not e.host:
        set_keys = [k for k in ("user", "password", "from_address") if getattr(e, k)]
        if set_keys:
            raise ConfigError(
                f"{where(set_keys[0])}: [email] {set_keys[0]} is set but host is empty: "
                "give [email] host (the SMTP server), or leave [email] out for no email channel"
            )
        return
    if any(c.isspace() for c in e.host) or "/" in e.host or "@" in e.host:
        raise ConfigError(
            f"{where('host')}: [email] host must be a host name or address (no scheme, no user)"
        )
    if not e.from_address:
        raise ConfigError(
            f"{file}: [email] host is set: [email] from_address is needed too "
            "(e.g. INCIDENT_EMAIL__FROM_ADDRESS=alerts@utility.example)"
        )
    _, address = parseaddr(e.from_address)
    try:
        local, _, domain = address.rpartition("@")
        Address(addr_spec=address)
        valid = bool(local) and "." in domain
    except (ValueError, IndexError):
        valid = False
    if not valid or "\n" in e.from_address or "\r" in e.from_address:
        raise ConfigError(f"{where('from_address')}: [email] from_address must be an address (name@domain)")
    if bool(e.user) != bool(e.password):
        missing = "password" if e.user else "user"
        raise ConfigError(f"{file}: [email] user and password go together: [email] {missing} is empty")
    if e.password and e.tls == "none":
        raise ConfigError(
            f'{where("tls")}: [email] tls = "none" would send the password in clear: use "starttls" or "tls"'
        )


def _from_folder(value: str, folder: Path) -> str:
    if not value or value.startswith(BUNDLED_PREFIX) or Path(value).is_absolute():
        return value
    return str(folder / value)


def _paths_from_folder(data: dict[str, Any], folder: Path) -> None:
    """Relative paths written in a config file name files beside it, wherever the service
    is started from (a wheel run from /tmp, a container's working directory)."""
    for section, key in PATH_KEYS:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            table[key] = _from_folder(table[key], folder)
    store = data.get("store")
    if isinstance(store, dict) and isinstance(url := store.get("url"), str) and url.startswith("sqlite:///"):
        store["url"] = "sqlite:///" + _from_folder(url.removeprefix("sqlite:///"), folder)


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``path`` (built-in defaults when None) and ``environ``."""
    file = str(path) if path is not None else "built-in defaults"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigError(f"{file}: no such config file") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{file}: not valid TOML: {err}") from err
    if path is not None:
        _paths_from_folder(data, path.resolve().parent)
    env_values, sources = _from_env(environ or {})
    for section, items in env_values.items():
        current = data.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"{file}: [{section}] must be a table")
        data[section] = {**(current or {}), **items}
    try:
        settings = msgspec.convert(data, Settings)
    except msgspec.ValidationError as err:
        raise ConfigError(_explain(err, sources, file)) from err
    _cross_checks(settings, sources, file)
    return settings


_SECRET_KEY = re.compile(r"(?:^|_)(?:token|password|secret)$")


def shown(key: str, value: object) -> object:
    """A value as `incident config` shows it: secrets (keys ending in token, password or
    secret; passwords inside URLs) masked."""
    if not isinstance(value, str) or not value:
        return value
    if _SECRET_KEY.search(key):
        return "********"
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1********@", value)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _toml_table(name: str, values: Mapping[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(shown(key, value))}")
    for key, table in tables:
        lines += ["", *_toml_table(f"{name}.{key}", table)]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{name}.{key}]]"]
            lines += [f"{k} = {_toml_value(shown(k, v))}" for k, v in item.items()]
    return lines


def settings_toml(settings: Settings) -> str:
    """The settings as a TOML file that loads back to the same settings (secrets masked)."""
    data: dict[str, dict[str, Any]] = msgspec.to_builtins(settings)
    # Paths relative to the working directory are written out whole, so that the file loads
    # back to the same files wherever it is saved (its relative paths would be beside it).
    _paths_from_folder(data, Path.cwd())
    out: list[str] = []
    for section, values in data.items():
        out += [*_toml_table(section, values), ""]
    return "\n".join(out)


def sqlite_path(url: str) -> Path:
    """The file behind a ``sqlite:///PATH`` URL (relative paths are relative to the cwd)."""
    return Path(url.removeprefix("sqlite:///"))
