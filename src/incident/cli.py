"""The ``incident`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click
import msgspec
from aiohttp import web

from incident.core.auth import add_token
from incident.core.clock import SystemClock
from incident.core.domain import Role
from incident.core.errors import IncidentError
from incident.core.memory import limit_allocator_arenas
from incident.households.files import Progress
from incident.intake.households import ImportResult as ImportResultT
from incident.settings import BUNDLED_DIR, Settings, environment_warnings, load_settings, settings_toml

log = logging.getLogger("incident")

_config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file (default: built-in defaults, as documented in config/default.toml).",
)


def _settings(config_file: Path | None) -> Settings:
    for warning in environment_warnings(os.environ):
        click.echo(f"Warning: {warning}", err=True)
    try:
        return load_settings(config_file, os.environ)
    except IncidentError as err:
        raise click.ClickException(err.message) from err


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log.level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka narrates every group join at INFO; its warnings and errors are what matter.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(settings.log.level)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="incident")
def main() -> None:
    """Incident command and mass notification for water, gas and district-heating utilities.

    Settings come from a TOML file (--config) plus INCIDENT_<SECTION>__<KEY> environment
    variables; see config/default.toml.
    """


# --- serve --------------------------------------------------------------------------------


async def _serve(settings: Settings) -> None:
    from incident.app import create_app

    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=settings.http.shutdown_timeout, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        from incident.keys import PUBLIC_URL

        for host, port, *_ in runner.addresses:
            if not app[PUBLIC_URL].value:  # the carrier calls us back here
                app[PUBLIC_URL].value = f"http://{host}:{port}"
            click.echo(
                f"Incident service listening on http://{host}:{port}/ (the console is there)", err=True
            )
            click.echo(f"  API description: http://{host}:{port}/api/openapi.json", err=True)
        log.info("ready; SIGTERM or Ctrl-C stops")
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        await runner.cleanup()
    log.info("stopped")


def with_role(settings: Settings, role: str) -> Settings:
    """The settings of one role: ``api`` takes HTTP and report ingest, ``worker`` the
    fan-out and the playbook timers, ``all`` (one machine) everything as configured. Both
    roles serve HTTP, so each has /healthz and /metrics."""
    if role == "all":
        return settings
    api = role == "api"
    return msgspec.structs.replace(
        settings,
        kafka=msgspec.structs.replace(settings.kafka, consume_reports=api),
        notify=msgspec.structs.replace(settings.notify, send=not api),
        playbooks=msgspec.structs.replace(settings.playbooks, enabled=not api),
    )


@main.command()
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    default="all",
    show_default=True,
    help="api: HTTP API, console, webhooks and report ingest; worker: fan-out and playbook "
    "timers; all: both (one machine). Several instances of each share the work.",
)
@_config_option
def serve(role: str, config_file: Path | None) -> None:
    """Run the service until SIGTERM or SIGINT, then shut down cleanly."""
    settings = with_role(_settings(config_file), role)
    _logging(settings)
    if (
        settings.store.url.startswith(("postgresql://", "postgres://"))
        and not settings.kafka.bootstrap_servers
    ):
        log.warning(
            "the store is PostgreSQL but Kafka is the embedded broker, which keeps messages in"
            " memory only: a restart loses reports not yet consumed. In production set"
            " [kafka] bootstrap_servers to a Kafka cluster"
        )
    limit_allocator_arenas()  # before any thread starts
    try:
        asyncio.run(_serve(settings))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    except OSError as err:
        raise click.ClickException(
            f"cannot listen on {settings.http.host}:{settings.http.port}: {err}"
        ) from err


# --- migrate ------------------------------------------------------------------------------


async def _migrate(settings: Settings) -> int:
    from incident.store import open_store

    store = open_store(settings.store, SystemClock())
    await store.open()  # opening brings the schema up to date (one migrator at a time)
    try:
        return await store.schema_version()
    finally:
        await store.close()


@main.command()
@_config_option
def migrate(config_file: Path | None) -> None:
    """Bring the store's schema up to date, then exit (a deployment's one-off job, run before
    new instances start; safe to run again, and instances wait for one another)."""
    settings = _settings(config_file)
    _logging(settings)
    try:
        version = asyncio.run(_migrate(settings))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    click.echo(f"store schema at version {version}")


# --- init ---------------------------------------------------------------------------------

#: What `incident init` writes beside the copied files: their settings, relative to the file.
_INIT_CONFIG = """\
# Written by `incident init`: the shipped defaults, copied here to be edited. Relative paths
# are relative to this file's folder. Every key: `incident config --config THIS_FILE`, and
# config/default.toml in the source tree.

[store]
url = "sqlite:///var/incident.db"

[auth]
tokens_file = "var/tokens.toml"

[area]
households = "sample/households.csv"
layers = "sample/layers"
network = "sample/network.inp"
valves = "sample/valves.csv"

[notify]
templates = "templates/notices"

[playbooks]
dir = "playbooks"
oncall = "oncall.toml"
"""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Copy the shipped defaults (notice templates, playbooks, on-call rotas, sample area,
    drill scenarios) into DIRECTORY with a config.toml naming them, to adapt to a utility.
    DIRECTORY must not exist yet or be empty."""
    import shutil

    if directory.exists() and any(directory.iterdir()):
        raise click.ClickException(f"{directory} is not empty: choose a new folder")
    shutil.copytree(
        BUNDLED_DIR, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    import secrets

    # Signs the links residents get to change or remove their sign-up: one per installation.
    secret = f'\n[enrolment]\nsecret = "{secrets.token_hex(32)}"\n'
    (directory / "config.toml").write_text(_INIT_CONFIG + secret, encoding="utf-8")
    config = directory / "config.toml"
    click.echo(f"wrote the defaults to {directory}; start with: incident serve --config {config}")


# --- tokens -------------------------------------------------------------------------------


@main.group()
def tokens() -> None:
    """Manage API bearer tokens ([auth] tokens_file)."""


@tokens.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--replace", is_flag=True, help="Issue a new token for an existing name.")
@_config_option
def tokens_add(name: str, role: str, replace: bool, config_file: Path | None) -> None:
    """Create a token NAME with ROLE; prints the token once (only its hash is kept). A running
    service takes it within seconds ([auth] reload_s), no restart."""
    settings = _settings(config_file)
    try:
        token = add_token(Path(settings.auth.tokens_file), name, Role(role), replace=replace)
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    click.echo(token)


# --- timeline -----------------------------------------------------------------------------


@main.group()
def timeline() -> None:
    """Inspect and export incident timelines."""


async def _verify(settings: Settings, incident_id: str) -> bool:
    from incident.incidents.service import verify_incident
    from incident.store import open_store

    store = open_store(settings.store, SystemClock())
    await store.open()
    try:
        result = await verify_incident(store, incident_id)
    finally:
        await store.close()
    if result.ok:
        click.echo(f"{incident_id}: OK, {result.events} events, head {result.head_hash}")
    else:
        click.echo(f"{incident_id}: BROKEN ({result.events} events)")
        for problem in result.problems:
            click.echo(f"  - {problem}")
    return result.ok


@timeline.command("verify")
@click.argument("incident_id")
@_config_option
def timeline_verify(incident_id: str, config_file: Path | None) -> None:
    """Recompute INCIDENT_ID's hash chain; exit 1 if it was altered."""
    settings = _settings(config_file)
    try:
        ok = asyncio.run(_verify(settings, incident_id))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    sys.exit(0 if ok else 1)


_EXPORT_FORMATS = ("json", "csv", "cap", "report")


async def _export(settings: Settings, incident_id: str, fmt: str) -> str:
    import msgspec

    from incident.api.schemas import Timeline
    from incident.core.errors import NotFound
    from incident.incidents.service import verify_incident
    from incident.notices.service import load_notice_templates
    from incident.review.cap import alerts_document
    from incident.review.exports import after_action_report, cap_export
    from incident.review.timeline import timeline_csv
    from incident.store import open_store

    clock = SystemClock()
    store = open_store(settings.store, clock)
    await store.open()
    try:
        if fmt == "cap":
            templates = await asyncio.to_thread(load_notice_templates, settings.notify)
            alerts = await cap_export(store, incident_id, templates, settings.notify.utility_url)
            return alerts_document(incident_id, alerts)
        if fmt == "report":
            return await after_action_report(store, incident_id, clock.now(), settings.notify.timezone)
        integrity = await verify_incident(store, incident_id)
        incident = await store.get_incident(incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        events = await store.timeline(incident_id)
        if fmt == "csv":
            return timeline_csv(events)
        body = msgspec.json.encode(Timeline(incident=incident, events=events, integrity=integrity))
        return msgspec.json.format(body, indent=2).decode() + "\n"
    finally:
        await store.close()


@timeline.command("export")
@click.argument("incident_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_EXPORT_FORMATS),
    default="json",
    show_default=True,
    help="json: timeline with integrity check; csv: one row per event; cap: CAP 1.2 alerts of "
    "the public notices (XML); report: the after-action report (printable HTML).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to FILE instead of standard output.",
)
@_config_option
def timeline_export(incident_id: str, fmt: str, output: Path | None, config_file: Path | None) -> None:
    """Export INCIDENT_ID's timeline for review: JSON, CSV, CAP 1.2 alerts or an after-action report."""
    settings = _settings(config_file)
    try:
        text = asyncio.run(_export(settings, incident_id, fmt))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8", newline="")
        click.echo(f"{incident_id}: {fmt} written to {output}", err=True)


# --- config -------------------------------------------------------------------------------


@main.command("config")
@_config_option
def show_config(config_file: Path | None) -> None:
    """Check the settings (each key, and keys that go together, such as Twilio's) and print
    them as TOML, as the service would use them (secrets hidden). Exit 1 with one line
    naming the key when they would not start the service."""
    settings = _settings(config_file)
    click.echo(settings_toml(settings), nl=False)


# --- reports ------------------------------------------------------------------------------


@main.group()
def reports() -> None:
    """Work with the report stream."""


@reports.group()
def dlq() -> None:
    """Dead letters: reports that could not be read, with the reason."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True, help="Show at most this many.")
@_config_option
def dlq_list(limit: int, config_file: Path | None) -> None:
    """List dead letters: where each sits (PARTITION:OFFSET), when, why, and the start of it."""
    from incident.adapters.kafka import cli_bootstrap, read_dead_letters

    settings = _settings(config_file)
    try:
        letters = asyncio.run(
            read_dead_letters(cli_bootstrap(settings.kafka), settings.kafka.dead_letter_topic, limit)
        )
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    if not letters:
        click.echo(f"no dead letters in {settings.kafka.dead_letter_topic}")
        return
    for d in letters:
        preview = (d.value or b"").decode("utf-8", "replace").replace("\n", " ")[:80]
        click.echo(
            f"{d.partition}:{d.offset}\t{d.header('error.code')}\t{d.header('error.message')[:100]}\t{preview}"
        )


@dlq.command("replay")
@click.argument("where", metavar="PARTITION:OFFSET")
@click.option(
    "--file",
    "fixed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this corrected JSON instead of the original message.",
)
@_config_option
def dlq_replay(where: str, fixed: Path | None, config_file: Path | None) -> None:
    """Re-submit a dead letter (fixed with --file) to the reports topic. It is checked first:
    a report that would be dead-lettered again is not sent."""
    from incident.adapters.kafka import cli_bootstrap, read_dead_letters, resubmit
    from incident.reports.model import ReportRejected, parse_report

    partition, sep, offset = where.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise click.BadParameter(
            "use PARTITION:OFFSET as `incident reports dlq list` shows", param_hint="WHERE"
        )
    settings = _settings(config_file)
    k = settings.kafka
    try:
        bootstrap = cli_bootstrap(k)
        found = asyncio.run(
            read_dead_letters(bootstrap, k.dead_letter_topic, 1, (int(partition), int(offset)))
        )
        if not found or (found[0].partition, found[0].offset) != (int(partition), int(offset)):
            raise click.ClickException(f"no dead letter at {where} in {k.dead_letter_topic}")
        letter = found[0]
        value = fixed.read_bytes() if fixed else (letter.value or b"")
        try:
            report = parse_report(value, k.max_report_bytes)
        except ReportRejected as rejected:
            problem = f"{rejected.code.value}: {rejected.message}"
            raise click.ClickException(
                f"still not a valid report ({problem}); fix it and pass --file"
            ) from rejected
        asyncio.run(resubmit(bootstrap, k.reports_topic, letter, value))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    click.echo(f"re-submitted {report.report_id} from {where} to {k.reports_topic}")


# --- households ---------------------------------------------------------------------------


@main.group()
def households() -> None:
    """The household registry (who lives where, how to reach them, in which language)."""


async def _import(settings: Settings, path: Path, total: int, quiet: bool) -> ImportResultT:
    from incident.intake.households import import_households, phone_rules, read_area_files
    from incident.store import open_store

    # The service area's extent: rows outside it (or with lon and lat swapped) are refused.
    extent = (await read_area_files(settings.area)).extent
    store = open_store(settings.store, SystemClock())
    await store.open()
    try:
        with click.progressbar(length=total, label=f"Importing {path.name}", file=sys.stderr,
                               show_pos=False, width=40) as bar:  # fmt: skip
            done = 0

            def progress(p: Progress) -> None:
                nonlocal done
                if not quiet:
                    bar.update(p.bytes_read - done)
                done = p.bytes_read

            return await import_households(
                store, path, progress=progress, extent=extent, phones=phone_rules(settings.area)
            )
    finally:
        await store.close()


@households.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_config_option
def households_import(file: Path, quiet: bool, config_file: Path | None) -> None:
    """Import a households FILE (CSV or GeoJSON points): good rows are added or updated by
    account_id; bad rows (including positions outside the service area) are listed with
    their line and reason, and so are rows loaded with a change (a fixed-line sms number
    moved to voice). Exit 1 if any was rejected. A running service picks the change up
    within seconds ([area] reload_s)."""
    settings = _settings(config_file)
    try:
        result = asyncio.run(_import(settings, file, file.stat().st_size, quiet))
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    for row in result.rejected:
        click.echo(f"{file}: {row}", err=True)
    for note in result.notes:
        click.echo(f"{file}: {note}", err=True)
    click.echo(result.summary())
    if result.rejected:
        sys.exit(1)


# --- playbooks ----------------------------------------------------------------------------


@main.group()
def playbooks() -> None:
    """Playbooks: what the service does, stage by stage, for each kind of incident."""


@playbooks.command("check")
@click.argument("directory", metavar="[DIR]", default=None, required=False, type=click.Path(path_type=Path))
@click.option(
    "--oncall",
    "oncall_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="On-call rotas file: every rota a playbook pages must be in it (default: [playbooks] "
    "oncall when DIR is not given).",
)
@_config_option
def playbooks_check(directory: Path | None, oncall_file: Path | None, config_file: Path | None) -> None:
    """Check the playbooks in DIR (default: [playbooks] dir, the ones `incident serve` loads; a
    single file works too) without running anything. Prints `ok: N playbooks`, or every problem
    as FILE:LINE: KEY: message and exits 1."""
    from incident.core.errors import PlaybookError
    from incident.playbook import load_oncall, load_playbooks

    if directory is None:
        p = _settings(config_file).playbooks
        directory = Path(p.dir)
        if oncall_file is None and p.oncall:
            oncall_file = Path(p.oncall)
    try:
        oncall = load_oncall(oncall_file) if oncall_file is not None else None
        found = load_playbooks(directory, oncall=oncall)
    except PlaybookError as err:
        for problem in err.problems:
            click.echo(problem)
        sys.exit(1)
    except IncidentError as err:
        click.echo(err.message)
        sys.exit(1)
    click.echo(f"ok: {len(found)} playbooks")


# --- templates ----------------------------------------------------------------------------


@main.group()
def templates() -> None:
    """Notice templates: what households are sent, per key, channel and language."""


@templates.command("check")
@click.argument("directory", metavar="[DIR]", default=None, required=False, type=click.Path(path_type=Path))
@_config_option
def templates_check(directory: Path | None, config_file: Path | None) -> None:
    """Check the notice templates in DIR (default: [notify] templates, the ones `incident
    serve` loads) as start-up does, and more: every file compiles, uses only known variables,
    renders with sample facts for every utility; every key and channel exists in the default
    language; water-quality notices carry every element the drinking-water notice rules
    require, in each language. Prints every problem as `error|warning: FILE[:LINE]: message`
    and exits 1 if any is an error; otherwise `ok: N templates`."""
    from incident.notices.checks import Severity, validate_templates

    notify = _settings(config_file).notify
    root = Path(notify.templates) if directory is None else directory
    problems = validate_templates(
        root, default_language=notify.default_language, max_chars=notify.max_chars,
        max_segments=notify.max_segments,
    )  # fmt: skip
    for problem in problems:
        click.echo(problem)
    if any(problem.severity is Severity.error for problem in problems):
        sys.exit(1)
    click.echo(f"ok: {sum(1 for _ in root.glob('*/*.j2'))} templates")


# --- drill --------------------------------------------------------------------------------


def _drill_dirs() -> list[Path]:
    """Where scenarios are found by name: the utility's own in ./config/drills, then the ones
    shipped with the package."""
    return [Path("config/drills"), BUNDLED_DIR / "drills"]


@main.group()
def drill() -> None:
    """Drills: play a scenario (timed reports and dispatcher actions) against the running service."""


@drill.command("run")
@click.argument("scenario")
@click.option("--url", default=None, help="The service's base URL (default: http://[http] host:port).")
@click.option(
    "--token",
    envvar="INCIDENT_TOKEN",
    default=None,
    help="Dispatcher or admin token (default: $INCIDENT_TOKEN; `make run` prints one).",
)
@click.option(
    "--bootstrap",
    default=None,
    help="Kafka HOST:PORT for the reports (default: [kafka] bootstrap_servers, else the embedded "
    "broker's embedded_listener).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Time compression (60: one scenario minute takes one second); default: the scenario's.",
)
@_config_option
def drill_run(
    scenario: str, url: str | None, token: str | None, bootstrap: str | None, speed: float | None,
    config_file: Path | None,
) -> None:  # fmt: skip
    """Play SCENARIO (a file, or the name of a shipped one: `incident drill list`) against the
    running service: reports onto Kafka, dispatcher actions through the API, progress as it
    goes and a summary. Exit 1 when a step fails or an expectation is not met."""
    from incident.adapters.kafka import cli_bootstrap
    from incident.drills.runner import run_drill
    from incident.drills.scenario import ScenarioError, find_scenario, load_scenario

    settings = _settings(config_file)
    try:
        played = load_scenario(find_scenario(scenario, _drill_dirs()))
    except ScenarioError as err:
        for problem in err.problems:
            click.echo(problem, err=True)
        sys.exit(1)
    if not token:
        raise click.ClickException(
            "no token: pass --token or set INCIDENT_TOKEN (`make run` prints a dispatcher token)"
        )
    host = "127.0.0.1" if settings.http.host in ("0.0.0.0", "::", "") else settings.http.host  # noqa: S104
    try:
        if bootstrap is None and played.report_ids:
            bootstrap = cli_bootstrap(settings.kafka)
        result = asyncio.run(
            run_drill(
                played, url=url or f"http://{host}:{settings.http.port}", token=token, bootstrap=bootstrap,
                topic=settings.kafka.reports_topic, speed=speed, out=click.echo,
            )
        )  # fmt: skip
    except IncidentError as err:
        raise click.ClickException(err.message) from err
    sys.exit(0 if result.ok else 1)


@drill.command("list")
def drill_list() -> None:
    """The scenarios (./config/drills, then the shipped ones): name, scenario time, speed
    and title."""
    from incident.drills.scenario import ScenarioError, format_offset, load_scenario, shipped_scenarios

    seen: set[str] = set()
    for directory in _drill_dirs():
        for file in shipped_scenarios(directory):
            if file.stem in seen:
                continue
            seen.add(file.stem)
            try:
                s = load_scenario(file)
            except ScenarioError as err:
                click.echo(f"{file.stem:<16} BROKEN: {err.problems[0]}")
                continue
            click.echo(f"{s.name:<16} {format_offset(s.duration)[1:]:>6} at {s.speed:>5g}x  {s.title}")
    if not seen:
        click.echo(f"no scenarios found in {' or '.join(map(str, _drill_dirs()))}")
