"""Notice flows: plan a notice for an incident's area (stored with its counts and previews
before anything is sent), approve it, and report delivery progress.

Planning streams: households in priority order -> deliveries (one per channel and address)
-> the store in batches, so a notice to a million households never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

import msgspec

from incident import domain
from incident.areas import resolve
from incident.auth import Principal
from incident.clock import Clock, isoformat
from incident.domain import Incident
from incident.errors import Conflict, InvalidInput, NotFound
from incident.geo import ServiceArea, iter_households
from incident.geo.household import Channel, Priority
from incident.geo.table import PRIORITY_RANK
from incident.incidents import IncidentService
from incident.memory import release_free_memory
from incident.notify.context import Advisory, NoticeContext, TemplateKey
from incident.notify.planner import AudienceCounts, PlannedDelivery, QuietHours, plan_deliveries, send_after
from incident.notify.preview import Preview, preview_notice
from incident.notify.records import Delivery, Notice
from incident.notify.states import DeliveryState
from incident.notify.templates import NoticeTemplates
from incident.settings import NotifySettings
from incident.store import Store
from incident.store.base import AppendTo, PutNotice

log = logging.getLogger(__name__)

BATCH = 5000


class Audience(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Only households of these priorities (e.g. ["medical"] for a first call-round).
    priority: list[Priority] | None = None


class NoticeFacts(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the dispatcher adds to the notice (times with a time zone)."""

    #: How households know the place: "Maple St between 1st and 5th Ave" (required).
    area: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""
    advisory: Advisory | None = None
    etr: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None


class NoticeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    template: TemplateKey
    channels: Annotated[list[Channel], msgspec.Meta(min_length=1)]
    audience: Audience | None = None
    facts: NoticeFacts


class PlannedNotice(msgspec.Struct, frozen=True):
    notice: Notice
    previews: list[Preview]


def context_for(incident: Incident, facts: NoticeFacts, settings: NotifySettings) -> NoticeContext:
    try:
        return NoticeContext(
            utility_name=settings.utility_name, utility_phone=settings.utility_phone,
            utility_url=settings.utility_url, incident_id=incident.id, kind=incident.kind,
            utility=incident.utility, area=facts.area, note=facts.note,
            advisory=facts.advisory, etr=facts.etr, start=facts.start, end=facts.end, drill=incident.drill,
            timezone=settings.timezone,
        )  # fmt: skip
    except ValueError as err:
        raise InvalidInput(str(err)) from err


class NoticeService:
    def __init__(
        self,
        store: Store,
        incidents: IncidentService,
        templates: NoticeTemplates,
        settings: NotifySettings,
        clock: Clock,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._templates = templates
        self._settings = settings
        self._clock = clock
        self._quiet = QuietHours.parse(settings.quiet_hours, settings.timezone)
        #: Called after an approval (the fan-out wakes up instead of waiting for its tick).
        self.on_approved: Callable[[], None] = lambda: None
        #: Channels this service can send on (app push needs a gateway).
        self.channels: frozenset[Channel] = frozenset(Channel)

    async def plan(
        self, incident_id: str, request: NoticeRequest, by: Principal, service: ServiceArea, buffer_m: float,
        *, action: str | None = None, auto_approve: bool = False,
    ) -> PlannedNotice:  # fmt: skip
        incident = await self._incidents.get(incident_id)
        if not incident.is_open:
            raise Conflict(f"{incident_id} is {incident.status.value}: no notices for a finished incident")
        if not incident.area_parts:
            raise Conflict(
                f"{incident_id} has no area yet: set it (PUT /api/incidents/{incident_id}/area) first"
            )
        missing = [c.value for c in request.channels if c not in self.channels]
        if missing:
            raise InvalidInput(f"cannot send on {', '.join(missing)}: app push needs [push] url (a gateway)")
        context = context_for(incident, request.facts, self._settings)
        number = await self._store.next_value(f"notice:{incident_id}")
        notice_id = f"{incident_id}-N{number}"
        now = isoformat(self._clock.now())
        counts = AudienceCounts()
        wanted = set(request.audience.priority) if request.audience and request.audience.priority else None
        # Numbers that texted STOP since the households file was made.
        stopped = {c: await self._store.opted_out_addresses(c.value) for c in request.channels}

        def stream() -> Iterator[PlannedDelivery]:
            selection = resolve(service, incident.area_parts, buffer_m).selection
            households = iter_households(service.households, selection)
            if wanted is not None:
                households = (h for h in households if h.priority in wanted)
            return plan_deliveries(households, request.channels, counts, stopped=stopped)

        planned = await asyncio.to_thread(stream)
        draft = Notice(
            notice_id=notice_id, incident_id=incident_id, template=request.template.value,
            channels=[c.value for c in request.channels], status="planning", created_by=by.name,
            created_at=now, context=msgspec.to_builtins(context),
        )  # fmt: skip
        await self._store.apply_plan([PutNotice(draft)])
        languages: dict[str, None] = {}
        while batch := await asyncio.to_thread(_take, planned, BATCH):
            for d in batch:
                languages.setdefault(d.language, None)
            await self._store.add_deliveries([_delivery(notice_id, incident_id, d, now) for d in batch])
        previews = preview_notice(
            self._templates, request.template.value, list(languages) or [self._settings.default_language],
            request.channels, context, max_segments=self._settings.max_segments,
        )  # fmt: skip
        notice = msgspec.structs.replace(draft, status="planned", counts=counts.as_dict())
        event = {
            "notice_id": notice_id,
            "template": notice.template,
            "channels": notice.channels,
            **notice.counts,
        }
        if action is not None:  # a playbook action: its key marks it done
            event["action"] = action
        if auto_approve:  # approved by the playbook at once; if cut short, on its next look
            event["auto_approve"] = True
        result = await self._store.apply_plan(
            [
                PutNotice(notice),
                AppendTo(
                    incident_id,
                    lambda s: [domain.EventDraft(type="notice_planned", actor=by.name, data=event)],
                ),
            ]
        )
        self._incidents.publish(result.appended)
        if counts.households > 50_000:  # a big plan leaves its scratch memory behind
            await asyncio.to_thread(release_free_memory)
        return PlannedNotice(notice, previews)

    async def get(self, incident_id: str, notice_id: str) -> Notice:
        notice = await self._store.get_notice(notice_id)
        if notice is None or notice.incident_id != incident_id:
            raise NotFound(f"no notice {notice_id} for {incident_id}")
        return notice

    async def approve(self, incident_id: str, notice_id: str, by: Principal) -> Notice:
        notice = await self.get(incident_id, notice_id)
        if notice.status != "planned":
            raise Conflict(f"notice {notice_id} is {notice.status}; only a planned notice can be approved")
        now = self._clock.now()
        after = send_after(TemplateKey(notice.template), now, self._quiet)
        approved = msgspec.structs.replace(
            notice, status="approved", approved_by=by.name, approved_at=isoformat(now),
            send_after=isoformat(after) if after else None,
        )  # fmt: skip
        data = {
            "notice_id": notice_id,
            "deliveries": notice.counts.get("deliveries", 0),
            "send_after": approved.send_after,
        }
        # One transaction: a store failure must not leave it approved with nothing released.
        result = await self._store.apply_plan(
            [
                PutNotice(approved, release_drafts=True),
                AppendTo(
                    incident_id,
                    lambda s: [domain.EventDraft(type="notice_approved", actor=by.name, data=data)],
                ),
            ]
        )
        self._incidents.publish(result.appended)
        self.on_approved()
        return approved


def _take(it: Iterator[PlannedDelivery], n: int) -> list[PlannedDelivery]:
    out: list[PlannedDelivery] = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


def _delivery(notice_id: str, incident_id: str, d: PlannedDelivery, now: str) -> Delivery:
    return Delivery(
        delivery_id=f"{notice_id}:{d.seq}", notice_id=notice_id, incident_id=incident_id, seq=d.seq,
        channel=d.channel.value, address=d.address, account_id=d.account_id, language=d.language,
        priority_rank=PRIORITY_RANK[d.priority], state=DeliveryState.draft, updated_at=now,
    )  # fmt: skip


def load_notice_templates(settings: NotifySettings) -> NoticeTemplates:
    """Load and check the templates at start: an error stops start-up naming file and line;
    warnings (a missing translation, an SMS over the segment limit) are logged."""
    from pathlib import Path

    from incident.errors import ConfigError
    from incident.notify.checks import validate_templates
    from incident.notify.templates import NoticeTemplateError, load_templates

    root = Path(settings.templates)
    try:
        templates = load_templates(
            root, default_language=settings.default_language, max_chars=settings.max_chars
        )
    except NoticeTemplateError as err:
        raise ConfigError(f"[notify] templates: {err.message}") from err
    problems = validate_templates(
        root, default_language=settings.default_language, max_chars=settings.max_chars,
        max_segments=settings.max_segments,
    )  # fmt: skip
    errors = [p for p in problems if p.severity.value == "error"]
    if errors:
        raise ConfigError(f"[notify] templates: {errors[0]}")
    for problem in problems:
        log.warning("notice templates: %s", problem)
    return templates
