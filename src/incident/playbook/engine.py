"""The playbook engine: drives each open incident through its playbook's stages.

It only ever looks at an incident's timeline and then acts, so it can stop at any point and
pick up where it left off:

- Evaluation of one incident runs under a lease in the store (one instance at a time, also
  across instances on PostgreSQL). It is triggered by the incident's own events (a durable
  ``eval`` timer re-armed to now), by fired durable timers, and by a periodic sweep that
  finds triggers lost in a crash.
- Each action has a key (``stage#visit:enter:N``, ``stage#visit:timer:ID:ROUND``) written into
  the event that records it: an action whose key is on the timeline is done. A notice is
  planned once (its ``notice_planned`` event carries the key; a plan cut short is left
  unapproved and never sent); an ``auto`` notice found planned but unapproved is approved.
  A page cut short between the text and its event may be texted again: staff would rather
  get a page twice than not at all.
- Timers of a stage visit are durable rows (``INC:stage#visit:timer:ROUND``), scheduled on
  entry, cancelled when the stage is left, each fired once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from shapely.geometry import Point

import incident.playbook.clocks as clocks
from incident.core import domain
from incident.core.auth import Principal
from incident.core.clock import Clock, isoformat
from incident.core.domain import Incident, Role, TimelineEvent
from incident.core.errors import (
    Conflict,
    IllegalTransition,
    IncidentError,
    InvalidInput,
    LeaseLost,
    StoreError,
)
from incident.households import ServiceArea
from incident.incidents.areas import AreaRequest, Around, Isolate
from incident.incidents.service import IncidentService, require_owner_or_command
from incident.notices.context import Advisory
from incident.notices.service import Audience, NoticeFacts, NoticeRequest, NoticeService
from incident.playbook.model import (
    Action,
    AreaMethod,
    AskEtr,
    ComputeArea,
    LiftAdvisory,
    Note,
    Page,
    PlanNotice,
    Playbook,
    SetAdvisory,
    SetEtr,
    SetStatus,
    Stage,
    TimerSchedule,
    exit_target,
    find_stage,
    select_playbook,
)
from incident.playbook.oncall import OnCall
from incident.settings import PlaybookSettings
from incident.store import Store
from incident.store.ports import DueTimer

log = logging.getLogger(__name__)

ACTOR = "system:playbook"
_SYSTEM = Principal(ACTOR, Role.admin)
Pager = Callable[[str, str], Awaitable[None]]
#: Events no playbook rule looks at: they do not wake the engine.
_UNWATCHED = frozenset({"note_added", "household_reply", "handed_over", "severity_changed"})


def stage_key(stage: str, visit: int) -> str:
    return f"{stage}#{visit}"


def action_keys(events: Sequence[TimelineEvent]) -> set[str]:
    return {str(e.data["action"]) for e in events if e.data.get("action")}


#: Incident kinds in plain words, for pages to staff.
KIND_NAMES: Mapping[str, str] = {
    "main_break": "Water main break",
    "unplanned_outage": "Unplanned outage",
    "planned_outage": "Planned outage",
    "low_pressure": "Low pressure",
    "contamination": "Contamination",
    "gas_leak": "Gas leak",
    "heat_outage": "Heat outage",
}


def facts_of(incident: Incident, events: Sequence[TimelineEvent]) -> dict[str, Any]:
    """What a page's text may name (``Page.render``)."""
    current = clocks.current_stage(list(events))
    etr = incident.etr
    households = incident.households
    return {
        "incident_id": incident.id,
        "title": incident.title,
        "kind": incident.kind.value,
        "kind_name": KIND_NAMES.get(incident.kind.value, incident.kind.value.replace("_", " ")),
        "affected": (
            f"{households:,} households affected"
            if households is not None
            else "households affected not known yet (no area)"
        ),
        "utility": incident.utility.value,
        "severity": incident.severity.value,
        "status": incident.status.value,
        "stage": current[0] if current else None,
        "playbook": incident.playbook,
        "households": incident.households,
        "etr": etr,
        "owner": incident.owner,
    }


def advisory_in_force(events: Sequence[TimelineEvent]) -> Advisory | None:
    for e in reversed(events):
        if e.type == "advisory_lifted":
            return None
        if e.type == "advisory_set":
            return Advisory(e.data["advisory"])
    return None


def notices_all_sent(events: Sequence[TimelineEvent], key: str) -> bool:
    """Every notice planned in the stage visit ``key`` has been handed over."""
    mine = {
        e.data["notice_id"]
        for e in events
        if e.type == "notice_planned" and str(e.data.get("action", "")).startswith(f"{key}:")
    }
    # A notice planned again (held or stale) is done with: its replacement counts instead.
    mine -= {e.data["replaces"] for e in events if e.type == "notice_planned" and e.data.get("replaces")}
    held = any(
        e.type == "notice_held" and str(e.data.get("action", "")).startswith(f"{key}:") for e in events
    )
    if held and not mine:
        return False
    sent = {e.data["notice_id"] for e in events if e.type == "notice_sent"}
    return bool(mine) and mine <= sent


def first_report(events: Sequence[TimelineEvent]) -> dict[str, Any] | None:
    return next((e.data for e in events if e.type == "report_linked"), None)


def _no_area(method: AreaMethod, report: Mapping[str, Any]) -> str:
    """Why the area was not computed, in true words (an incident declared by hand has no report)."""
    how = {AreaMethod.isolation: "isolation", AreaMethod.zones: "zones", AreaMethod.around: "a radius"}
    ask = (
        "choose the broken pipe (isolate) or draw the area"
        if method is AreaMethod.isolation
        else "choose the zones or draw the area"
    )
    if not report:
        return (
            f"area not computed by {how.get(method, method.value)}: no report came with this incident; {ask}"
        )
    missing = "the broken pipe" if method is AreaMethod.isolation else "a location"
    return f"area not computed by {how.get(method, method.value)}: the report gives no {missing}; {ask}"


class PlaybookEngine:
    def __init__(
        self,
        settings: PlaybookSettings,
        playbooks: Mapping[str, Playbook],
        store: Store,
        incidents: IncidentService,
        notices: NoticeService,
        service_area: Callable[[], ServiceArea],
        clock: Clock,
        *,
        buffer_m: float,
        oncall: OnCall | None = None,
        pager: Pager | None = None,
    ) -> None:
        self._s = settings
        self.playbooks = dict(playbooks)
        self._store = store
        self._incidents = incidents
        self._notices = notices
        self._service_area = service_area
        self._clock = clock
        self._buffer_m = buffer_m
        self._oncall = oncall or OnCall()
        self._pager = pager
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._touched: set[str] = set()
        #: One evaluation at a time in this process; the store's lease covers other instances.
        self._round = asyncio.Lock()
        incidents.listeners.append(self._heard)

    # --- triggers ------------------------------------------------------------------------------

    def _heard(self, incident_id: str, events: Sequence[TimelineEvent]) -> None:
        if any((e.actor != ACTOR and e.type not in _UNWATCHED) or e.type == "stage_entered" for e in events):
            self._touched.add(incident_id)
            self._wake.set()

    def playbook_for(self, incident: Incident) -> Playbook | None:
        if incident.playbook:
            return self.playbooks.get(incident.playbook)
        return select_playbook(self.playbooks.values(), incident.kind, incident.utility)

    def _lease(self) -> str:
        return isoformat(self._clock.now() + timedelta(seconds=self._s.lease_s))

    async def poke(self, incident_id: str, at: datetime | None = None) -> None:
        """Look at the incident at ``at`` (now): a durable wake-up, kept if we stop first."""
        when = isoformat(at or self._clock.now())
        await self._store.schedule_timers(
            [DueTimer(timer_id=f"{incident_id}:eval", incident_id=incident_id, due_at=when)], rearm=True
        )

    async def sweep(self) -> None:
        for incident in await self._store.list_incidents(domain.OPEN_STATUSES, 10_000):
            if self.playbook_for(incident) is not None:
                await self.poke(incident.id)

    async def run_due(self) -> int:
        """Fire what is due now: the tests' handle on time (with a manual clock)."""
        async with self._round:
            return await self._run_due()

    async def _run_due(self) -> int:
        touched, self._touched = self._touched, set()
        for incident_id in touched:
            await self.poke(incident_id)
        now = isoformat(self._clock.now())
        due = await self._store.claim_timers(now, self.owner, self._lease(), 200)
        by_incident: dict[str, list[DueTimer]] = {}
        for t in due:
            by_incident.setdefault(t.incident_id, []).append(t)
        for incident_id, fired in by_incident.items():
            now = isoformat(self._clock.now())
            if not await self._store.lock_incident(incident_id, self.owner, now, self._lease()):
                # Another instance is at it: look again soon rather than when our claim runs out.
                soon = isoformat(self._clock.now() + timedelta(seconds=self._s.poll_s))
                await self._store.schedule_timers(
                    [msgspec.structs.replace(t, due_at=soon) for t in fired], rearm=True
                )
                continue
            try:
                await self.evaluate(incident_id, fired)
            except (StoreError, LeaseLost) as err:
                # Passing: the timers stay claimed until the lease runs out, then fire again.
                log.warning("playbook for %s stopped, to be retried: %s", incident_id, err.message)
                continue
            except IncidentError as err:
                log.error("playbook for %s: %s", incident_id, err.message)
            except Exception:  # one incident's surprise must not hold up the others claimed with it
                log.exception("playbook for %s failed", incident_id)
            finally:
                await self._store.unlock_incident(incident_id, self.owner, isoformat(self._clock.now()))
            for t in fired:
                await self._store.finish_timer(t.timer_id, self.owner, isoformat(self._clock.now()))
        return len(due)

    async def _keep_lease(self, incident_id: str) -> None:
        """Renew the incident's lease before each action; stop if another instance has it."""
        now = isoformat(self._clock.now())
        if not await self._store.lock_incident(incident_id, self.owner, now, self._lease()):
            raise LeaseLost(f"the evaluation lease of {incident_id} went to another instance")

    async def run(self) -> None:
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() >= next_sweep:
                    await self.sweep()
                    next_sweep = loop.time() + self._s.sweep_s
                while await self.run_due():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop outlives any one failure; the timers are still there
                log.exception("playbook engine round failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._s.poll_s):
                    await self._wake.wait()

    # --- one incident ---------------------------------------------------------------------------

    async def evaluate(self, incident_id: str, fired: Sequence[DueTimer] = ()) -> None:
        """Bring the incident up to date with its playbook (idempotent)."""
        incident = await self._store.get_incident(incident_id)
        if incident is None:
            return
        playbook = self.playbook_for(incident)
        if playbook is None or incident.awaiting_confirmation:
            return  # a rule opened it and asks a person first: nothing goes out before that
        for _ in range(len(playbook.stages) + 2):  # stage moves chain; a playbook cannot loop forever
            events = await self._store.timeline(incident_id)
            incident = await self._incidents.get(incident_id)
            current = clocks.current_stage(events)
            if current is None:
                if not incident.is_open:
                    return
                await self._enter(incident, playbook, playbook.stages[0], "declared", None)
                continue
            stage_id, entered_at, visit = current
            stage = find_stage(playbook, stage_id)
            if stage is None:
                return
            if not incident.is_open:
                # Finished: its notices still go out (and are recorded), nothing else happens.
                await self._store.cancel_timers(incident_id, f"{incident_id}:{stage_id}#")
                await self._notices_sent(incident, events)
                return
            key = stage_key(stage_id, visit)
            # Scheduling is idempotent: timers lost to a crash right after entry come back,
            # and ones waiting for a planned start are scheduled once it is known.
            await self._schedule_stage_timers(incident_id, stage, visit, events, entered_at)
            await self._approve_auto_notices(incident, events)
            done = action_keys(events)
            for i, action in enumerate(stage.on_enter):
                action_key = f"{key}:enter:{i}"
                if action_key not in done:
                    await self._act(incident, playbook, action, action_key, events)
                    # The next action sees what this one did (a page names the households).
                    events = await self._store.timeline(incident_id)
                    incident = await self._incidents.get(incident_id)
            for t in fired:
                if t.payload.get("stage_key") == key:
                    await self._fire(incident, playbook, stage, t, events)
            fired = ()
            events = await self._store.timeline(incident_id)
            incident = await self._incidents.get(incident_id)
            await self._notices_sent(incident, events)
            if not incident.is_open:
                continue  # a stage closed it: the next round cancels its timers
            await self._slas(incident, playbook, events)
            events = await self._store.timeline(incident_id)
            sent = notices_all_sent(events, key)
            rule = clocks.exit_due(stage, entered_at, events, self._clock.now(), playbook.conditions, sent)
            if rule is None:
                await self._wake_for_exits(incident_id, stage, entered_at)
                return
            target = exit_target(playbook, stage_id, rule)
            if target is None:
                return
            await self._enter(incident, playbook, target, f"exit: {rule.trigger.value}", stage_id)

    async def enter_by_hand(self, incident_id: str, stage_id: str, by: Principal, reason: str | None) -> None:
        incident = await self._incidents.get(incident_id)
        require_owner_or_command(incident, by)
        playbook = self.playbook_for(incident)
        if playbook is None:
            raise Conflict(f"{incident_id} runs no playbook: its stages cannot be moved")
        stage = find_stage(playbook, stage_id)
        if stage is None:
            known = ", ".join(s.id for s in playbook.stages)
            raise InvalidInput(f"playbook {playbook.name} has no stage {stage_id!r} (stages: {known})")
        async with self._round:
            now = isoformat(self._clock.now())
            if not await self._store.lock_incident(incident_id, self.owner, now, self._lease()):
                raise Conflict(f"{incident_id} is being updated by its playbook; try again in a moment")
            try:
                current = clocks.current_stage(await self._store.timeline(incident_id))
                if current is not None and current[0] == stage_id:
                    raise Conflict(f"{incident_id} is already in stage {stage_id}")
                previous = current[0] if current else None
                await self._enter(incident, playbook, stage, reason or "moved by hand", previous, by)
                await self.poke(incident_id)
            finally:
                await self._store.unlock_incident(incident_id, self.owner, isoformat(self._clock.now()))
        self._wake.set()

    async def _enter(
        self,
        incident: Incident,
        playbook: Playbook,
        stage: Stage,
        reason: str,
        previous: str | None,
        by: Principal = _SYSTEM,
    ) -> None:
        expected = previous

        def decide(state: Incident) -> list[domain.EventDraft]:
            if not state.is_open:
                raise Conflict(f"{state.id} is {state.status.value}")
            drafts = [
                domain.EventDraft(
                    type="stage_entered",
                    actor=by.name,
                    data={
                        "stage": stage.id,
                        "title": stage.label,
                        "from": expected,
                        "playbook": playbook.name,
                        "by": "playbook" if by is _SYSTEM else by.name,
                        "reason": reason,
                    },
                )
            ]
            if stage.status is not None and stage.status != state.status:
                try:
                    drafts += domain.change_status(state, stage.status, by.name, f"stage {stage.id}")
                except IllegalTransition as err:
                    drafts.append(
                        domain.EventDraft(
                            type=domain.EventType.note_added,
                            actor=by.name,
                            data={"text": f"status not changed: {err.message}"},
                        )
                    )
            return drafts

        events = await self._store.timeline(incident.id)
        if previous is not None:
            prev = clocks.current_stage(events)
            if prev is not None:
                await self._store.cancel_timers(incident.id, f"{incident.id}:{stage_key(prev[0], prev[2])}:")
        appended = await self._store.append(incident.id, decide)
        self._incidents.publish([appended])
        visit = 1 + sum(1 for e in events if e.type == "stage_entered" and e.data.get("stage") == stage.id)
        await self._schedule_stage_timers(incident.id, stage, visit, events, appended.events[0].at)

    async def _schedule_stage_timers(
        self, incident_id: str, stage: Stage, visit: int, events: Sequence[TimelineEvent], entered_at: str
    ) -> None:
        key = stage_key(stage.id, visit)
        entered = datetime.fromisoformat(entered_at)
        start = clocks.planned_start(events)
        rows = []
        # Of the reminders before a planned start that are already past (work declared late),
        # only the latest goes out: three copies of one notice at once help nobody.
        late = [
            t for t in stage.timers
            if t.schedule is TimerSchedule.at_before_start and start is not None
            and datetime.fromisoformat(start) - t.delay <= entered
        ]  # fmt: skip
        skip = {t.id for t in sorted(late, key=lambda t: t.delay)[1:]}
        for timer in stage.timers:
            if timer.id in skip:
                continue
            if timer.schedule is TimerSchedule.at_before_start:
                if start is None:
                    continue
                due = max(entered, datetime.fromisoformat(start) - timer.delay)
            else:
                due = entered + timer.delay
            rows.append(
                DueTimer(
                    timer_id=f"{incident_id}:{key}:{timer.id}:1",
                    incident_id=incident_id,
                    due_at=isoformat(due),
                    payload={"stage_key": key, "timer": timer.id, "round": 1},
                )
            )
        if rows:
            await self._store.schedule_timers(rows)

    async def _approve_auto_notices(self, incident: Incident, events: Sequence[TimelineEvent]) -> None:
        """An ``auto`` notice planned but not approved (cut short in between) is approved now."""
        approved = {e.data["notice_id"] for e in events if e.type == "notice_approved"}
        for e in events:
            if (
                e.type == "notice_planned"
                and e.data.get("auto_approve")
                and e.data["notice_id"] not in approved
            ):
                with contextlib.suppress(Conflict):
                    await self._notices.approve(incident.id, e.data["notice_id"], _SYSTEM)

    async def _fire(
        self,
        incident: Incident,
        playbook: Playbook,
        stage: Stage,
        fired: DueTimer,
        events: Sequence[TimelineEvent],
    ) -> None:
        timer = next((t for t in stage.timers if t.id == fired.payload.get("timer")), None)
        if timer is None:
            return
        rnd = int(fired.payload.get("round", 1))
        key = f"{fired.payload['stage_key']}:timer:{timer.id}:{rnd}"
        if key not in action_keys(events):
            await self._act(incident, playbook, timer.action, key, events)
        if timer.schedule is TimerSchedule.every:
            due = datetime.fromisoformat(fired.due_at) + timer.delay
            stage_part = fired.payload["stage_key"]
            await self._store.schedule_timers(
                [
                    DueTimer(
                        timer_id=f"{incident.id}:{stage_part}:{timer.id}:{rnd + 1}",
                        incident_id=incident.id,
                        due_at=isoformat(max(due, self._clock.now())),
                        payload={"stage_key": stage_part, "timer": timer.id, "round": rnd + 1},
                    )
                ]
            )

    async def _wake_for_exits(self, incident_id: str, stage: Stage, entered_at: str) -> None:
        for rule in stage.exit:
            if rule.after is not None:
                await self.poke(incident_id, datetime.fromisoformat(entered_at) + rule.after)

    # --- actions ---------------------------------------------------------------------------------

    async def _record(self, incident_id: str, type_: str, key: str, data: dict[str, Any]) -> None:
        def decide(state: Incident) -> list[domain.EventDraft]:
            return [domain.EventDraft(type=type_, actor=ACTOR, data={**data, "action": key})]

        self._incidents.publish([await self._store.append(incident_id, decide)])

    async def _act(
        self,
        incident: Incident,
        playbook: Playbook,
        action: Action,
        key: str,
        events: Sequence[TimelineEvent],
    ) -> None:
        try:
            await self._run_action(incident, playbook, action, key, events)
        except (StoreError, LeaseLost):
            raise  # passing: the timer is looked at again, the action was not recorded
        except IncidentError as err:
            # Recorded, not retried in a loop: a dispatcher sees why and acts by hand.
            log.warning("playbook action %s of %s failed: %s", key, incident.id, err.message)
            await self._record(
                incident.id,
                "note_added",
                key,
                {"text": f"playbook action {type(action).__name__} failed: {err.message}"},
            )

    async def _run_action(
        self,
        incident: Incident,
        playbook: Playbook,
        action: Action,
        key: str,
        events: Sequence[TimelineEvent],
    ) -> None:
        match action:
            case PlanNotice():
                await self._plan_notice(incident, action, key, events)
            case ComputeArea():
                await self._compute_area(incident, action, key, events)
            case Page():
                await self._page(action.rota, action.render(facts_of(incident, events)), incident.id, key)
            case AskEtr():
                await self._record(incident.id, "etr_requested", key, {"reason": action.reason})
            case SetEtr():
                etr = isoformat(self._clock.now() + action.in_)
                await self._record(incident.id, "etr_set", key, {"etr": etr, "reason": action.reason})
            case SetAdvisory():
                advisory = action.advisory or playbook.advisory or Advisory.boil_water
                await self._record(
                    incident.id, "advisory_set", key, {"advisory": advisory.value, "reason": action.reason}
                )
            case LiftAdvisory():
                lifted = advisory_in_force(events)
                await self._record(
                    incident.id,
                    "advisory_lifted",
                    key,
                    {"advisory": lifted.value if lifted else None, "reason": action.reason},
                )
            case Note():
                await self._record(incident.id, "note_added", key, {"text": action.text})
            case SetStatus():
                to, reason = action.status, action.reason or "playbook"

                def decide(state: Incident) -> list[domain.EventDraft]:
                    drafts = domain.change_status(state, to, ACTOR, reason)
                    return [
                        domain.EventDraft(type=d.type, actor=d.actor, data={**d.data, "action": key})
                        for d in drafts
                    ]

                self._incidents.publish([await self._store.append(incident.id, decide)])

    async def _plan_notice(
        self, incident: Incident, action: PlanNotice, key: str, events: Sequence[TimelineEvent]
    ) -> None:
        etr, start, end = incident.etr, clocks.planned_start(events), incident.end
        # No "where" here: the notice takes the dispatcher's area description or the zone
        # names, never the title (a caller's words); without one it is held, not sent.
        facts = NoticeFacts(
            note=action.note,
            advisory=advisory_in_force(events),
            etr=datetime.fromisoformat(etr) if etr else None,
            start=datetime.fromisoformat(start) if start else None,
            end=datetime.fromisoformat(end) if end else None,
        )
        audience = (
            Audience(list(action.audience.priority)) if action.audience and action.audience.priority else None
        )
        channels = [c for c in action.channels if c in self._notices.channels]
        request = NoticeRequest(template=action.template, channels=channels, audience=audience, facts=facts)
        auto = action.approval.value == "auto"
        planned = await self._notices.plan(
            incident.id, request, _SYSTEM, self._service_area(), self._buffer_m, action=key, auto_approve=auto
        )
        if auto and planned.notice.status == "planned":  # a held notice never goes on its own
            await self._notices.approve(incident.id, planned.notice.notice_id, _SYSTEM)

    async def _compute_area(
        self, incident: Incident, action: ComputeArea, key: str, events: Sequence[TimelineEvent]
    ) -> None:
        if action.method is AreaMethod.drawn:
            await self._record(
                incident.id, "note_added", key, {"text": "waiting for a dispatcher to draw the area"}
            )
            return
        report = first_report(events) or {}
        location, asset = report.get("location"), report.get("asset") or {}
        service = self._service_area()
        request: AreaRequest | None = None
        if action.method is AreaMethod.isolation and asset.get("type") == "pipe":
            request = AreaRequest(isolate=Isolate(pipe=str(asset["id"])))
        elif action.method is AreaMethod.zones and action.zones:
            request = AreaRequest(zones=list(action.zones))
        elif action.method is AreaMethod.zones and location:
            point = Point(location["lon"], location["lat"])
            inside = sorted(
                (z for z in service.zones.zones if z.geometry.covers(point)), key=lambda z: z.geometry.area
            )
            request = AreaRequest(zones=[inside[0].id]) if inside else None
        elif action.method is AreaMethod.around and location and action.radius_m:
            request = AreaRequest(
                around=Around(lon=location["lon"], lat=location["lat"], radius_m=action.radius_m)
            )
        if request is None:
            await self._record(incident.id, "note_added", key, {"text": _no_area(action.method, report)})
            return
        await self._incidents.set_area(incident.id, request, _SYSTEM, service, self._buffer_m, action=key)

    async def _page(self, rota: str, text: str, incident_id: str, key: str) -> None:
        people = self._oncall.rotas.get(rota)
        sent = 0
        if people is not None and self._pager is not None:
            for person in people.people:
                try:
                    await self._pager(person.phone, text)
                    sent += 1
                except IncidentError as err:  # one unreachable phone must not stop the others
                    log.warning("page to %s of rota %s failed: %s", person.name, rota, err.message)
        await self._record(incident_id, "page_sent", key, {"rota": rota, "people": sent, "text": text})

    # --- notices handed over, SLA clocks -----------------------------------------------------------

    async def _notices_sent(self, incident: Incident, events: Sequence[TimelineEvent]) -> None:
        """A ``notice_sent`` event for each approved notice once every one of its deliveries
        was tried; while some wait, look again soon (or when quiet hours end)."""
        approved = [e.data["notice_id"] for e in events if e.type == "notice_approved"]
        sent = {e.data["notice_id"] for e in events if e.type == "notice_sent"}
        waiting = [n for n in approved if n not in sent]
        if not waiting:
            return
        pending = await self._store.pending_by_notice(incident.id)
        done = [n for n in waiting if n not in pending]
        if done:
            templates = {
                e.data["notice_id"]: e.data.get("template") for e in events if e.type == "notice_planned"
            }

            def decide(state: Incident) -> list[domain.EventDraft]:
                return [
                    domain.EventDraft(
                        type="notice_sent", actor=ACTOR, data={"notice_id": n, "template": templates.get(n)}
                    )
                    for n in done
                ]

            self._incidents.publish([await self._store.append(incident.id, decide)])
        held = [pending[n] for n in waiting if n in pending]
        if held:
            now = self._clock.now()
            soon = now + timedelta(seconds=self._s.poll_s)
            # All of them held back by quiet hours: no need to look before those end.
            if all(not_before is not None and not_before > isoformat(soon) for _, not_before in held):
                soon = min(datetime.fromisoformat(str(nb)) for _, nb in held)
            await self.poke(incident.id, soon)

    async def _slas(self, incident: Incident, playbook: Playbook, events: Sequence[TimelineEvent]) -> None:
        now = self._clock.now()
        found = clocks.sla_clocks(playbook.slas, list(events), now)
        by_id = {s.id: s for s in playbook.slas}
        for clock in clocks.newly_met(found, list(events)):
            await self._record(
                incident.id,
                "sla_met",
                f"sla:{clock.sla}:met",
                {
                    "sla": clock.sla,
                    "title": by_id[clock.sla].title,
                    "due_at": clock.due_at,
                    "met_at": clock.met_at,
                },
            )
        for clock in clocks.due_breaches(found):
            sla = by_id[clock.sla]
            text = f"SLA breached on {incident.id}: {sla.title} (due {clock.due_at})"
            await self._record(
                incident.id,
                "sla_breached",
                f"sla:{clock.sla}:breached",
                {
                    "sla": clock.sla,
                    "title": sla.title,
                    "due_at": clock.due_at,
                    "escalated_to": list(sla.escalate),
                },
            )
            for rota in sla.escalate:
                await self._page(rota, text, incident.id, f"sla:{clock.sla}:page:{rota}")
        deadline = clocks.next_deadline(found)
        if deadline is not None:
            await self.poke(incident.id, max(datetime.fromisoformat(deadline), now))
