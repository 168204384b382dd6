"""Typed, frozen settings built once from a TOML file plus ``INCIDENT_<SECTION>__<KEY>``.

Only :func:`load_settings` looks at the environment, and only at the mapping it is given.
``config/default.toml`` documents every key; a test keeps it equal to the defaults here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from incident.domain import Kind, Severity
from incident.errors import ConfigError

ENV_PREFIX = "INCIDENT_"

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


class AuthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    tokens_file: str = "var/tokens.toml"


class AreaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    households: str = "config/sample/households.csv"
    layers: str = "config/sample/layers"
    network: str = "config/sample/network.inp"
    valves: str = "config/sample/valves.csv"
    crs: str = ""
    #: How far (metres) a household may be from its pipe to be attached to it.
    service_distance_m: Annotated[float, msgspec.Meta(gt=0)] = 100.0
    #: Width (metres) of the band drawn around the pipes an isolation leaves dry.
    isolation_buffer_m: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class NotifySettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    #: Folder of templates/notices/<language>/<key>.<channel>.j2
    templates: str = "templates/notices"
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
    dir: str = "config/playbooks"
    #: On-call rotas that pages and SLA escalations text; empty: pages are only recorded.
    oncall: str = "config/oncall.toml"
    #: How long one instance holds an incident's evaluation or a claimed timer.
    lease_s: PositiveFloat = 120.0
    #: How often sent notices are checked for being handed over, and timers polled.
    poll_s: PositiveFloat = 2.0
    #: Every open incident is looked at again this often (a trigger lost in a crash is found).
    sweep_s: PositiveFloat = 60.0


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    store: StoreSettings = msgspec.field(default_factory=StoreSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    correlation: CorrelationSettings = msgspec.field(default_factory=CorrelationSettings)
    carrier: CarrierSettings = msgspec.field(default_factory=CarrierSettings)
    twilio: TwilioSettings = msgspec.field(default_factory=TwilioSettings)
    push: PushSettings = msgspec.field(default_factory=PushSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    area: AreaSettings = msgspec.field(default_factory=AreaSettings)
    notify: NotifySettings = msgspec.field(default_factory=NotifySettings)
    playbooks: PlaybookSettings = msgspec.field(default_factory=PlaybookSettings)
    live: LiveSettings = msgspec.field(default_factory=LiveSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    console: ConsoleSettings = msgspec.field(default_factory=ConsoleSettings)


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
            value = msgspec.convert(raw, fields[key], strict=False)
        except msgspec.ValidationError as err:
            raise ConfigError(f"environment {name}: {err}") from err
        values.setdefault(section, {})[key] = value
        sources[(section, key)] = f"environment {name}"
    return values, sources


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
    env_values, sources = _from_env(environ or {})
    for section, items in env_values.items():
        current = data.get(section)
        if current is not None and not isinstance(current, dict):
            raise ConfigError(f"{file}: [{section}] must be a table")
        data[section] = {**(current or {}), **items}
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as err:
        raise ConfigError(_explain(err, sources, file)) from err


def sqlite_path(url: str) -> Path:
    """The file behind a ``sqlite:///PATH`` URL (relative paths are relative to the cwd)."""
    return Path(url.removeprefix("sqlite:///"))
