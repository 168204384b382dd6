"""Play a drill scenario against a running service: reports onto Kafka, dispatcher actions
through the HTTP API, progress lines a dispatcher can follow, and a summary.

The runner is a client like any other: it holds a dispatcher (or admin) token, produces
reports to the reports topic and calls the API. It follows one incident, the run's: the one
its ``declare`` step opens, or the one a report of the run opens by an ``auto_declare`` rule
(``GET /api/reports/{id}`` says where each report went). It never acts on an incident it did
not open, so a drill cannot approve notices of a real incident.

Time: a step runs when the scenario clock reaches its ``at``; the clock runs ``speed``
times faster than real time while the runner waits for the next step, and at real pace
while it waits for the service (``wait_for``, a report being ingested), which does not run
faster in a drill. Lines carry the scenario clock (``[+00:05]``, hours:minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec

from incident.adapters.kafka import Producer, make_producer
from incident.core.domain import TimelineEvent, describe
from incident.core.errors import BrokerError, IncidentError
from incident.drills.scenario import (
    NOT_HANDED_OVER,
    DeliveryCount,
    Expect,
    ReportSpec,
    Scenario,
    Step,
    WaitFor,
    format_offset,
    report_message,
)
from incident.reports.model import ReportRejected, parse_report

__all__ = ["DrillError", "DrillResult", "Expectation", "new_run_id", "run_drill", "summary_lines"]

Out = Callable[[str], None]

#: The contract's largest report the service takes by default ([kafka] max_report_bytes).
_MAX_REPORT_BYTES = 65_536
_RULE_NOTE = "opened the incident by rule"
_CONFLICT_TRIES = 5


class DrillError(IncidentError):
    """The drill cannot run at all: no service, a refused token, no broker."""

    code = "drill_failed"


class _StepFailed(IncidentError):
    """A step the service refused, or a wait that did not come true: the run stops."""

    code = "drill_step_failed"


@dataclass(frozen=True)
class Expectation:
    text: str
    met: bool
    found: str


@dataclass
class DrillResult:
    scenario: str
    run_id: str
    incident_id: str | None = None
    incident: dict[str, Any] | None = None
    stages: list[str] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    deliveries: dict[str, dict[str, int]] = field(default_factory=dict)
    expectations: list[Expectation] = field(default_factory=list)
    #: What stopped the run early (the step and why), or None when every step ran.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(e.met for e in self.expectations)


def new_run_id() -> str:
    """A short id for one run; reports get it as a suffix."""
    return "r" + secrets.token_hex(3)


def _counts_text(counts: dict[str, dict[str, int]]) -> str:
    parts = []
    for channel in sorted(counts):
        states = ", ".join(f"{s} {n}" for s, n in sorted(counts[channel].items()) if n)
        if states:
            parts.append(f"{channel}: {states}")
    return "; ".join(parts) or "none"


def _event_text(event: dict[str, Any]) -> str:
    """One line for an event the service wrote by itself."""
    d: dict[str, Any] = event.get("data") or {}
    match event.get("type"):
        case "stage_entered":
            return f"stage {d.get('stage')} entered ({d.get('title') or d.get('stage')})"
        case "notice_held":
            missing = ", ".join(d.get("missing_facts", []))
            return f"notice {d.get('notice_id')} ({d.get('template')}) held: {missing} missing"
        case "notice_planned":
            counts: dict[str, Any] = d["counts"] if isinstance(d.get("counts"), dict) else d
            return (
                f"notice {d.get('notice_id')} planned: {d.get('template')}, "
                f"{counts.get('deliveries', '?')} deliveries to {counts.get('households', '?')} households"
            )
        case "notice_approved":
            held = f", held for quiet hours until {d['send_after']}" if d.get("send_after") else ""
            return f"notice {d.get('notice_id')} approved ({d.get('deliveries', '?')} deliveries{held})"
        case "notice_sent":
            return f"notice {d.get('notice_id')} handed to the carriers"
        case "page_sent":
            return f"paged rota {d.get('rota')} ({d.get('people', 0)} people): {d.get('text', '')}"
        case "sla_started":
            return f"SLA clock {d.get('sla')} started, due {d.get('due_at')}"
        case "sla_met":
            return f"SLA {d.get('sla')} met"
        case "sla_breached":
            escalated = ", ".join(d.get("escalated_to") or []) or "nobody"
            return f"SLA {d.get('sla')} BREACHED (due {d.get('due_at')}); escalated to {escalated}"
        case "advisory_set":
            return f"advisory {d.get('advisory')} in force"
        case "advisory_lifted":
            return f"advisory {d.get('advisory')} lifted"
        case "etr_requested":
            return f"ETR requested: {d.get('reason', '')}"
        case "etr_set":
            return f"ETR set to {d.get('etr')}"
        case "timer_fired":
            return f"timer {d.get('timer')} fired"
    try:
        return describe(msgspec.convert(event, TimelineEvent))
    except (msgspec.ValidationError, KeyError, TypeError, ValueError):
        return str(event.get("type", "event")).replace("_", " ")


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        session: aiohttp.ClientSession,
        url: str,
        bootstrap: str | None,
        topic: str,
        run_id: str,
        speed: float,
        out: Out,
        ingest_timeout: float,
        poll_s: float,
    ) -> None:
        self.scenario = scenario
        self.session = session
        self.url = url.rstrip("/")
        self.bootstrap = bootstrap
        self.topic = topic
        self.run_id = run_id
        self.speed = speed
        self.out = out
        self.ingest_timeout = ingest_timeout
        self.poll_s = poll_s
        self.me = ""
        self.start = datetime.now(UTC)
        #: Scenario time now (see the module's note on time).
        self.now = timedelta(0)
        self.incident_id: str | None = None
        #: Report ids of the file -> ids in this run.
        self.reports: dict[str, str] = {}
        self.seen_seq = 0
        self.result = DrillResult(scenario.name, run_id)
        self._producer: Producer | None = None

    # --- output and HTTP ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out(f"[{format_offset(self.now)}] {text}")

    async def call(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> tuple[int, Any]:
        """One API call; a 409 ``conflict`` (the playbook is changing the same incident, "try
        again") is tried again a few times, as a dispatcher would."""
        for attempt in range(_CONFLICT_TRIES):
            status, data = await self._request(method, path, body)
            error = data.get("error", {}) if isinstance(data, dict) and status >= 400 else {}
            error = error if isinstance(error, dict) else {}
            if status == 409 and error.get("code") == "conflict" and attempt + 1 < _CONFLICT_TRIES:
                await asyncio.sleep(0.3 * (attempt + 1))
                continue
            if status == 401:
                raise DrillError(f"the service at {self.url} refused the token (401)")
            if status == 404 and missing_ok:
                return status, None
            if status >= 400:
                message = error.get("message", "") if error else str(data)
                raise _StepFailed(
                    f"{method} {path} answered {status} {error.get('code', 'error')}: {message}"
                )
            break
        return status, data

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        try:
            async with self.session.request(method, self.url + path, json=body) as resp:
                data = await resp.json(content_type=None) if resp.content_length != 0 else None
                return resp.status, data
        except aiohttp.ClientConnectionError as err:
            raise DrillError(f"the service at {self.url} stopped answering ({err})") from err
        except (aiohttp.ContentTypeError, ValueError) as err:
            raise _StepFailed(f"{method} {path}: the answer is not JSON ({err})") from err
        except TimeoutError as err:
            raise _StepFailed(f"{method} {path}: no answer in time") from err

    def _incident_path(self, suffix: str = "") -> str:
        if self.incident_id is None:
            raise _StepFailed(
                "no incident in this run yet: declare one (a `declare` step) or produce a report"
                " that an auto_declare rule opens one for"
            )
        return f"/api/incidents/{self.incident_id}{suffix}"

    # --- the clock and following the incident ---------------------------------------------------

    async def idle(self, real_s: float, *, scenario_speed: float | None = None) -> None:
        """Let ``real_s`` seconds pass, following the incident; the scenario clock runs at
        ``scenario_speed`` (default: the run's speed)."""
        loop = asyncio.get_running_loop()
        speed = self.speed if scenario_speed is None else scenario_speed
        begin, base = loop.time(), self.now
        deadline = begin + real_s
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(left, self.poll_s))
            self.now = base + timedelta(seconds=(loop.time() - begin) * speed)
            await self.follow()

    async def follow(self) -> None:
        """Print what the service did by itself on the run's incident since the last look."""
        if self.incident_id is None:
            return
        # Only what is new: a page (up to 1,000 events) each look, the next look goes on from there.
        _, timeline = await self.call("GET", self._incident_path(f"/timeline?after={self.seen_seq}"))
        for event in timeline.get("events", []):
            if event["seq"] <= self.seen_seq:
                continue
            self.seen_seq = event["seq"]
            data = event.get("data") or {}
            if event["type"] == "stage_entered":
                self.result.stages.append(str(data.get("stage")))
            ours = event.get("actor") == self.me
            known = event["type"] == "declared" or (
                event["type"] == "report_linked" and data.get("report_id") in self.reports.values()
            )
            if not ours and not known:
                self.say(f"{event.get('actor')}: {_event_text(event)}")

    async def adopt(self, incident_id: str, how: str) -> None:
        self.incident_id = incident_id
        _, incident = await self.call("GET", self._incident_path())
        drill = "" if incident.get("drill") else " (not marked as a drill: incidents a rule opens never are)"
        self.say(f"incident {incident_id} declared {how}{drill}: {incident.get('title')}")
        await self.follow()

    # --- steps --------------------------------------------------------------------------------------

    async def step(self, step: Step) -> None:
        action = step.action
        match action:
            case "report":
                assert step.report is not None
                await self.report(step.report, step.offset)
            case "declare":
                await self.declare(step)
            case "confirm":
                _, incident = await self.call("POST", self._incident_path("/confirm"))
                self.say(f"incident {self.incident_id} confirmed; owner {incident.get('owner')}")
            case "take":
                body: dict[str, Any] = {"to": self.me, "reason": "taken in a drill"}
                _, incident = await self.call("POST", self._incident_path("/handover"), body)
                self.say(f"incident {self.incident_id} taken; owner {incident.get('owner')}")
            case "link":
                assert step.link is not None
                rid = self.reports[step.link]
                self._incident_path()  # there must be one
                body = {"incident_id": self.incident_id, "reason": "linked in a drill"}
                await self.call("POST", f"/api/reports/{rid}/link", body)
                self.say(f"report {rid} linked to {self.incident_id}")
            case "area":
                _, area = await self.call("PUT", self._incident_path("/area"), msgspec.to_builtins(step.area))
                valves = ", ".join(area.get("valves_to_close") or []) or "none"
                self.say(f"area set: {area.get('households')} households; valves to close: {valves}")
            case "describe":
                await self.describe(dict(step.describe or {}))
            case "notice":
                _, planned = await self.call(
                    "POST", self._incident_path("/notices"), msgspec.to_builtins(step.notice)
                )
                n = planned["notice"]
                counts = n["counts"]
                self.say(
                    f"notice {n['notice_id']} planned: {n['template']} on {', '.join(n['channels'])}, "
                    f"{counts.get('deliveries', 0)} deliveries to {counts.get('households', 0)} households"
                )
            case "approve":
                assert step.approve is not None
                await self.approve(step.approve)
            case "stage":
                await self.call("POST", self._incident_path("/stage"), {"stage": step.stage})
                self.say(f"stage {step.stage} entered by hand")
                await self.follow()
            case "status":
                body = (
                    msgspec.to_builtins(step.status)
                    if isinstance(step.status, msgspec.Struct)
                    else {"status": step.status}
                )
                _, before = await self.call("GET", self._incident_path())
                _, after = await self.call("POST", self._incident_path("/status"), body)
                self.say(f"status {before.get('status')} -> {after.get('status')}")
            case "note":
                await self.call("POST", self._incident_path("/notes"), {"text": step.note})
                self.say(f"note added: {step.note}")
            case "say":
                self.say(f">> {step.say}")
            case "wait_for":
                assert step.wait_for is not None
                await self.wait_for(step.wait_for)
            case "expect":
                assert step.expect is not None
                await self.expect(step.expect)

    async def report(self, spec: ReportSpec, offset: timedelta) -> None:
        message = report_message(spec, self.run_id, self.start + offset)
        value = msgspec.json.encode(message)
        rid = message["report_id"]
        try:
            parse_report(value, _MAX_REPORT_BYTES)
        except ReportRejected as err:
            raise _StepFailed(f"report {rid} would be dead-lettered: {err}") from err
        producer = await self.producer()
        try:
            await producer.send_and_wait(self.topic, value, key=rid.encode())
        except BrokerError as err:
            raise DrillError(f"Kafka at {self.bootstrap} did not take report {rid}: {err}") from err
        self.reports[spec.report_id] = rid
        self.say(f"report {rid} produced ({spec.kind.value}, {spec.severity.value}, {spec.source})")
        stored = await self.ingested(rid)
        status, incident_id, note = stored["status"], stored.get("incident_id"), stored.get("note") or ""
        if status == "unassigned":
            self.say(f"report {rid} waits in the triage queue")
        elif status == "dismissed":
            self.say(f"report {rid} dismissed: {note}")
        elif note.startswith(_RULE_NOTE) and self.incident_id is None and incident_id:
            await self.adopt(incident_id, f"by rule ({note.removeprefix(_RULE_NOTE).lstrip(': ')})")
        elif incident_id == self.incident_id:
            self.say(f"report {rid} linked to {incident_id}: {note}")
            await self.follow()
        else:
            self.say(
                f"WARNING: report {rid} went to {incident_id}, which this drill did not open ({note}); the"
                " drill leaves it alone. An earlier run left it open? Close it and run again."
            )

    async def producer(self) -> Producer:
        if self._producer is None:
            if not self.bootstrap:
                raise DrillError("no Kafka broker to send reports to: pass --bootstrap HOST:PORT")
            producer = make_producer(self.bootstrap)
            try:
                async with asyncio.timeout(15):
                    await producer.start()
            except (BrokerError, OSError, TimeoutError) as err:
                await producer.stop()
                raise DrillError(
                    f"no Kafka broker answers at {self.bootstrap} ({type(err).__name__}: {err}): is the"
                    " service running (`make run` starts its broker), or pass --bootstrap"
                ) from err
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def ingested(self, rid: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ingest_timeout
        while True:
            status, stored = await self.call("GET", f"/api/reports/{rid}", missing_ok=True)
            if status == 200 and isinstance(stored, dict):
                return stored
            if loop.time() > deadline:
                raise _StepFailed(
                    f"the service did not take report {rid} from {self.topic} at {self.bootstrap} within"
                    f" {self.ingest_timeout:.0f} s: is it consuming reports from that broker and topic"
                    " ([kafka] consume_reports, reports_topic)?"
                )
            await asyncio.sleep(0.2)

    async def declare(self, step: Step) -> None:
        spec = step.declare
        assert spec is not None
        if self.incident_id is not None:
            raise _StepFailed(
                f"this run already follows {self.incident_id}; a scenario runs one incident (drop the"
                " declare step, or the report that a rule declares from)"
            )
        if spec.report is not None:
            rid = self.reports[spec.report]
            body = {k: v for k, v in (("title", spec.title), ("severity", spec.severity)) if v is not None}
            _, declared = await self.call("POST", f"/api/reports/{rid}/declare", {**body, "drill": True})
            incident, how = declared["incident"], f"from report {rid}"
        else:
            _, incident = await self.call("POST", "/api/incidents", spec.body())
            how = "by the scenario"
        self.incident_id = incident["id"]
        playbook = f"; playbook {incident['playbook']}" if incident.get("playbook") else ""
        self.say(f"incident {incident['id']} declared {how} (drill): {incident['title']}{playbook}")
        await self.follow()

    async def describe(self, where: dict[str, str]) -> None:
        """Describe the area for households; held notices (no "where" yet) are planned again."""
        await self.call("PUT", self._incident_path("/area/description"), where)
        self.say(f"area described: {'; '.join(f'{lang}: {text}' for lang, text in where.items())}")
        _, listed = await self.call("GET", self._incident_path("/notices"))
        for held in [n for n in listed.get("notices", []) if n["status"] == "held"]:
            _, planned = await self.call("POST", self._incident_path(f"/notices/{held['notice_id']}/replan"))
            again = planned["notice"]["notice_id"]
            self.say(f"notice {held['notice_id']} ({held['template']}) planned again as {again}")

    async def approve(self, which: str) -> None:
        """The newest planned notice (of template ``which``); the playbook may still be
        planning it, so look again for a while."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.ingest_timeout, 30.0)
        while True:
            _, listed = await self.call("GET", self._incident_path("/notices"))
            planned = [
                n for n in listed.get("notices", [])
                if n["status"] == "planned" and which in ("latest", n["template"])
            ]  # fmt: skip
            if planned:
                break
            held = [
                n for n in listed.get("notices", [])
                if n["status"] == "held" and which in ("latest", n["template"])
            ]  # fmt: skip
            if held:  # planned (held) after the area was described: plan it again, as a trainee would
                _, incident = await self.call("GET", self._incident_path())
                if incident.get("area_description"):
                    for notice in held:
                        nid = notice["notice_id"]
                        await self.call("POST", self._incident_path(f"/notices/{nid}/replan"))
                        self.say(f"notice {nid} ({notice['template']}) was held: planned again")
                    continue
            if loop.time() > deadline:
                raise _StepFailed(f"no planned {'' if which == 'latest' else which + ' '}notice to approve")
            await self.idle(min(self.poll_s, 0.5), scenario_speed=1.0)
        notice = max(planned, key=lambda n: (n["created_at"], n["notice_id"]))
        if notice.get("stale"):  # a fact changed since it was planned: read it again first
            _, again = await self.call("POST", self._incident_path(f"/notices/{notice['notice_id']}/replan"))
            self.say(
                f"notice {notice['notice_id']} was stale ({', '.join(notice['stale_facts'])}): planned again"
            )
            notice = again["notice"]
        _, approved = await self.call("POST", self._incident_path(f"/notices/{notice['notice_id']}/approve"))
        waits = f", held for quiet hours until {approved['send_after']}" if approved.get("send_after") else ""
        self.say(
            f"notice {notice['notice_id']} ({notice['template']}) approved: "
            f"{notice['counts'].get('deliveries', 0)} deliveries{waits}"
        )

    async def _condition(self, wait: WaitFor) -> tuple[bool, str]:
        if wait.deliveries_final is not None:
            _, d = await self.call("GET", self._incident_path("/deliveries?limit=1"))
            counts: dict[str, dict[str, int]] = d.get("counts", {})
            mine = {c: s for c, s in counts.items() if not wait.channels or c in wait.channels}
            pending = sum(n for s in mine.values() for st, n in s.items() if st in NOT_HANDED_OVER)
            released = sum(n for s in mine.values() for st, n in s.items() if st != "draft")
            return released > 0 and pending == 0, _counts_text(mine)
        _, incident = await self.call("GET", self._incident_path())
        if wait.stage is not None:
            return incident.get("stage") == wait.stage, f"stage {incident.get('stage') or 'none'}"
        return incident.get("status") == wait.status, f"status {incident.get('status')}"

    async def wait_for(self, wait: WaitFor) -> None:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        while True:
            done, now = await self._condition(wait)
            waited = loop.time() - begin
            if done:
                await self.follow()
                detail = f" ({now})" if wait.deliveries_final else ""
                reached = "" if wait.deliveries_final else " reached"
                self.say(f"{wait.describe()}{reached} after {waited:.0f} s{detail}")
                return
            if waited > wait.timeout_s:
                raise _StepFailed(
                    f"timed out after {wait.timeout} waiting for {wait.describe()} (now: {now})"
                )
            await self.idle(min(self.poll_s, 0.5), scenario_speed=1.0)

    async def expect(self, expect: Expect) -> None:
        _, incident = await self.call("GET", self._incident_path())
        await self.follow()
        checks: list[Expectation] = []
        if expect.stage is not None:
            found = str(incident.get("stage"))
            checks.append(Expectation(f"stage is {expect.stage}", found == expect.stage, found))
        if expect.status is not None:
            found = str(incident.get("status"))
            checks.append(Expectation(f"status is {expect.status.value}", found == expect.status, found))
        if expect.stages_entered:
            missing = [stage for stage in expect.stages_entered if stage not in self.result.stages]
            text = f"stages {', '.join(expect.stages_entered)} entered"
            checks.append(Expectation(text, not missing, " -> ".join(self.result.stages) or "none"))
        if expect.notices_approved:
            _, listed = await self.call("GET", self._incident_path("/notices"))
            notices = listed.get("notices", [])
            for template in expect.notices_approved:
                states = [str(n["status"]) for n in notices if n["template"] == template]
                met = any(s not in ("planning", "planned", "cancelled") for s in states)
                checks.append(
                    Expectation(f"notice {template.value} approved", met, ", ".join(states) or "none")
                )
        if expect.deliveries:
            _, d = await self.call("GET", self._incident_path("/deliveries?limit=1"))
            for want in expect.deliveries:
                checks.append(_delivery_check(want, d.get("counts", {})))
        for check in checks:
            verdict = "met" if check.met else "FAILED"
            self.say(f"expect {check.text}: {verdict} (found {check.found})")
        self.result.expectations += checks

    # --- the whole run ------------------------------------------------------------------------------

    async def preflight(self) -> None:
        try:
            async with self.session.get(self.url + "/api/me") as resp:
                status = resp.status
                me = await resp.json(content_type=None) if status == 200 else None
        except aiohttp.ClientConnectionError as err:
            raise DrillError(
                f"no incident service answers at {self.url} ({err}): start it with `make run`"
                " (or `incident serve`), or give its address with --url"
            ) from err
        except TimeoutError as err:
            raise DrillError(f"the service at {self.url} did not answer in time") from err
        if status == 401:
            raise DrillError(
                f"the service at {self.url} does not know this token (401): use the dispatcher token"
                " `make run` printed (a new one each run) with --token or INCIDENT_TOKEN, or make one"
                " with `incident tokens add NAME --role dispatcher`"
            )
        if status != 200 or not isinstance(me, dict):
            raise DrillError(
                f"{self.url} does not look like the incident service (GET /api/me answered {status})"
            )
        if me.get("role") not in ("dispatcher", "admin"):
            raise DrillError(
                f"the token of {me.get('name')} has the role {me.get('role')}: a drill declares incidents"
                " and approves notices, which takes a dispatcher or admin token"
            )
        self.me = str(me["name"])

    async def play(self) -> DrillResult:
        s = self.scenario
        self.say(
            f"drill {s.name}: {s.title} (run {self.run_id}, speed {self.speed:g}x, "
            f"{format_offset(s.duration)[1:]} of scenario time, as {self.me} on {self.url})"
        )
        current: Step | None = None
        try:
            for current in s.steps:
                ahead = (current.offset - self.now).total_seconds() / self.speed
                if ahead > 0:
                    await self.idle(ahead)
                self.now = max(self.now, current.offset)
                await self.follow()  # what the service did before this step shows first
                await self.step(current)
        except _StepFailed as err:
            assert current is not None
            self.result.error = f"step at {current.at} ({current.action}): {err.message}"
            self.say(f"STOPPED: {self.result.error}")
        await self.summarise()
        return self.result

    async def summarise(self) -> None:
        r = self.result
        r.incident_id = self.incident_id
        if self.incident_id is not None:
            with contextlib.suppress(_StepFailed):
                await self.follow()
                _, r.incident = await self.call("GET", self._incident_path())
                _, listed = await self.call("GET", self._incident_path("/notices"))
                r.notices = listed.get("notices", [])
                _, d = await self.call("GET", self._incident_path("/deliveries?limit=1"))
                r.deliveries = d.get("counts", {})
        for line in summary_lines(r):
            self.out(line)


def _delivery_check(want: DeliveryCount, counts: dict[str, dict[str, int]]) -> Expectation:
    found = want.count(counts)
    return Expectation(want.describe(), found >= want.at_least, str(found))


def summary_lines(r: DrillResult) -> list[str]:
    lines = [f"--- drill {r.scenario} (run {r.run_id}): {'PASSED' if r.ok else 'FAILED'}"]
    if r.incident_id is None:
        lines.append("  incident      none")
    else:
        inc = r.incident or {}
        lines.append(
            f"  incident      {r.incident_id}{' (drill)' if inc.get('drill') else ''}: status "
            f"{inc.get('status', '?')}, stage {inc.get('stage') or '-'}, "
            f"{inc.get('households') or 0} households"
        )
    lines.append(f"  stages        {' -> '.join(r.stages) or 'none'}")
    if r.notices:
        lines.append(
            "  notices       "
            + ", ".join(f"{n['notice_id']} {n['template']} {n['status']}" for n in r.notices)
        )
    lines.append(f"  deliveries    {_counts_text(r.deliveries)}")
    met = sum(e.met for e in r.expectations)
    lines.append(f"  expectations  {met} met, {len(r.expectations) - met} failed")
    lines += [f"    FAILED: {e.text} (found {e.found})" for e in r.expectations if not e.met]
    if r.error:
        lines.append(f"  stopped       {r.error}")
    return lines


async def run_drill(
    scenario: Scenario,
    *,
    url: str,
    token: str,
    bootstrap: str | None,
    topic: str = "utility.reports",
    speed: float | None = None,
    out: Out = print,
    run_id: str | None = None,
    ingest_timeout: float = 30.0,
    poll_s: float = 1.0,
) -> DrillResult:
    """Play ``scenario`` against the service at ``url``. Raises :class:`DrillError` when it
    cannot run at all; a refused step or a wait that times out ends the run early, with
    ``result.error`` set. ``result.ok`` is the exit status."""
    timeout = aiohttp.ClientTimeout(total=30)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        run = _Run(
            scenario, session, url, bootstrap, topic, run_id or new_run_id(),
            speed if speed is not None else scenario.speed, out, ingest_timeout, poll_s,
        )  # fmt: skip
        await run.preflight()
        try:
            return await run.play()
        finally:
            await run.close()
