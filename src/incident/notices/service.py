"""Notice flows: plan a notice for an incident's area (stored with its counts and the exact
texts that go out before anything is sent), preview one (nothing stored), approve it (by one
or two people), plan it again when it is held or stale, and report delivery progress.

A notice's public facts are explicit: "where" is the dispatcher's description of the area
per language, or the names of its zones; never the incident's title or a report's summary.
A playbook notice without it is *held* (``missing_facts``) until a dispatcher gives it; a
change of the area or of a fact after planning makes a plan *stale*: not approvable.

Planning streams: households in priority order -> deliveries (one per channel and address)
-> the store in batches, so a notice to a million households never sits in memory whole.
A preview only counts (column operations, :mod:`incident.notices.audience`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Annotated, Any

import msgspec
import numpy as np

from incident.core import domain
from incident.core.auth import Principal
from incident.core.clock import Clock, isoformat
from incident.core.domain import Incident, TimelineEvent
from incident.core.errors import Conflict, InvalidInput, NotFound
from incident.core.memory import release_free_memory
from incident.deliveries.records import Approval, Delivery, Notice
from incident.deliveries.states import DeliveryState
from incident.households import ServiceArea, iter_households
from incident.households.model import Channel, Priority
from incident.households.table import PRIORITY_RANK
from incident.incidents.areas import AreaText, LanguageTag, resolve
from incident.incidents.service import IncidentService, require_owner_or_command
from incident.notices.audience import count_audience, notify_order
from incident.notices.context import Advisory, NoticeContext, TemplateKey
from incident.notices.planner import AudienceCounts, PlannedDelivery, QuietHours, plan_deliveries, send_after
from incident.notices.preview import Preview, preview_notice
from incident.notices.templates import NoticeTemplates
from incident.settings import NotifySettings
from incident.store import Store
from incident.store.ports import AppendTo, PlanStep, PutNotice

log = logging.getLogger(__name__)

BATCH = 5000


class Audience(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Only households of these priorities (e.g. ["medical"] for a first call-round).
    priority: list[Priority] | None = None


class NoticeFacts(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the dispatcher adds to the notice (times with a time zone).

    "Where" comes from ``area`` / ``area_i18n`` when given; otherwise from the incident's area
    description (``PUT …/area/description``), or the names of its zones. Never from a title.
    """

    #: How households know the place, in every language without its own text below.
    area: AreaText | None = None
    #: How households know the place, per template language: {"en": ..., "zh-CN": ...}.
    area_i18n: dict[LanguageTag, AreaText] = msgspec.field(default_factory=dict)
    note: Annotated[str, msgspec.Meta(max_length=500, pattern=domain.ONE_LINE_PATTERN)] = ""
    advisory: Advisory | None = None
    etr: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None


class NoticeRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    template: TemplateKey
    channels: Annotated[list[Channel], msgspec.Meta(min_length=1)]
    audience: Audience | None = None
    facts: NoticeFacts = msgspec.field(default_factory=NoticeFacts)


class PlannedNotice(msgspec.Struct, frozen=True):
    notice: Notice
    previews: list[Preview]


class NoticePreview(msgspec.Struct, frozen=True, kw_only=True):
    """What planning would give, with nothing stored: counts and the exact texts."""

    incident_id: str
    template: str
    channels: list[str]
    counts: dict[str, Any]
    previews: list[Preview]
    #: Facts missing for this notice (``["area"]``): planning it would be refused (or held).
    missing_facts: list[str] = msgspec.field(default_factory=list)
    message: str | None = None
    #: Channels asked for that it would not go out on, and why.
    skipped_channels: dict[str, str] = msgspec.field(default_factory=dict)


#: Timeline events that change what a planned notice says or whom it reaches.
_FACT_EVENTS: dict[str, str] = {
    "area_changed": "area",
    "area_described": "area_description",
    "etr_set": "etr",
    "advisory_set": "advisory",
    "advisory_lifted": "advisory",
}
_SYSTEM_PREFIX = "system:"
#: Why a channel cannot be sent on at all by this service.
_UNAVAILABLE: dict[Channel, str] = {
    Channel.push: "app push needs [push] url (a gateway)",
    Channel.email: "email needs an SMTP server: [email] host and from_address",
    Channel.sms: "not available",
    Channel.voice: "not available",
}


class PublicArea(msgspec.Struct, frozen=True):
    """The area as households are told it: a text for every language without its own."""

    text: str
    i18n: dict[str, str]
    #: facts (the request), description (the dispatcher's), zones (zone names)
    source: str


def public_area(
    incident: Incident, facts: NoticeFacts, service: ServiceArea, default_language: str
) -> PublicArea | None:
    """Where the notice says it is: the request's text, the incident's area description, or
    the names of its zones (when the area is zones only); None when there is none."""
    if facts.area or facts.area_i18n:
        i18n = dict(facts.area_i18n)
        text = facts.area or i18n.get(default_language) or next(iter(i18n.values()))
        return PublicArea(text, i18n, "facts")
    if incident.area_description:
        i18n = dict(incident.area_description)
        return PublicArea(i18n.get(default_language) or next(iter(i18n.values())), i18n, "description")
    parts = incident.area_parts
    if parts and all(p.get("method") == "zones" and p.get("op") == "add" for p in parts):
        ids = list(dict.fromkeys(z for p in parts for z in p.get("zones", [])))
        zones = [service.zones.by_id[z] for z in ids if z in service.zones.by_id]
        if zones:
            languages = {lang for z in zones for lang in z.names}
            i18n = {lang: ", ".join(z.name_in(lang) for z in zones) for lang in sorted(languages)}
            return PublicArea(i18n.get(default_language) or ", ".join(z.name for z in zones), i18n, "zones")
    return None


def context_for(
    incident: Incident, facts: NoticeFacts, settings: NotifySettings, area: PublicArea | None
) -> NoticeContext:
    try:
        return NoticeContext(
            utility_name=settings.utility_name, utility_phone=settings.utility_phone,
            utility_url=settings.utility_url, incident_id=incident.id, kind=incident.kind,
            utility=incident.utility, area=area.text if area else "", area_i18n=area.i18n if area else {},
            note=facts.note, advisory=facts.advisory, etr=facts.etr, start=facts.start, end=facts.end,
            drill=incident.drill, timezone=settings.timezone,
        )  # fmt: skip
    except ValueError as err:
        raise InvalidInput(str(err)) from err


_MISSING_AREA = (
    "held: no public description of the area. Enter it (PUT /api/incidents/{id}/area/description,"
    ' e.g. {{"en": "Maple St 1-99", "zh-CN": "枫树街1-99号"}}) or choose zones, then plan it again'
)


def stale_facts(basis_seq: int, events: Sequence[TimelineEvent]) -> list[str]:
    """The facts that changed after event ``basis_seq`` (area, area_description, etr, advisory)."""
    return list(
        dict.fromkeys(_FACT_EVENTS[e.type] for e in events if e.seq > basis_seq and e.type in _FACT_EVENTS)
    )


def render_previews(
    templates: NoticeTemplates, template: str, channels: Sequence[Channel], context: NoticeContext,
    by_channel_language: Mapping[str, Counter[str]], area: PublicArea | None, *,
    default_language: str, max_segments: int,
) -> list[Preview]:  # fmt: skip
    """One preview per channel and language someone reads it in (the default language when
    nobody does), largest audience first, each with its households. Pure."""
    out: list[Preview] = []
    for channel in channels:
        counts = by_channel_language.get(channel.value) or Counter()
        languages = [lang for lang, _ in counts.most_common()] or [default_language]
        for language in languages:
            [p] = preview_notice(
                templates, template, [language], [channel], context, max_segments=max_segments
            )
            warnings = p.warnings
            if area is not None and area.source != "zones" and area.i18n and p.language_used not in area.i18n:
                warnings += (f"no {p.language_used} area text: households read {area.text!r}",)
            out.append(msgspec.structs.replace(p, households=counts.get(language, 0), warnings=warnings))
    return out


class NoticeService:
    def __init__(
        self,
        store: Store,
        incidents: IncidentService,
        templates: NoticeTemplates,
        settings: NotifySettings,
        clock: Clock,
        *,
        channels: frozenset[Channel] = frozenset(Channel),
        on_approved: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._templates = templates
        self._settings = settings
        self._clock = clock
        self._quiet = QuietHours.parse(settings.quiet_hours, settings.timezone)
        #: Called after an approval (the fan-out wakes up instead of waiting for its tick).
        self.on_approved = on_approved
        #: Channels this service can send on (app push needs a gateway).
        self.channels = channels

    def _check_channels(self, request: NoticeRequest) -> tuple[list[Channel], dict[str, str]]:
        """The channels the notice goes out on, and those it does not, with why. A channel
        this service cannot send on is refused; an email without a template for the notice
        is left out (saying so), unless nothing would be left."""
        missing = [c for c in request.channels if c not in self.channels]
        if missing:
            reasons = "; ".join(f"{c.value}: {_UNAVAILABLE[c]}" for c in missing)
            raise InvalidInput(f"cannot send on {', '.join(c.value for c in missing)} ({reasons})")
        key = request.template.value
        skipped: dict[str, str] = {}
        channels: list[Channel] = []
        for channel in dict.fromkeys(request.channels):
            if channel is Channel.email and not self._templates.has(
                self._settings.default_language, key, channel
            ):
                skipped[channel.value] = (
                    f"no {key}.email.j2 template in {self._settings.default_language}: not sent by email"
                )
            else:
                channels.append(channel)
        if not channels:
            raise InvalidInput(f"cannot send {key}: {'; '.join(skipped.values())}")
        return channels, skipped

    async def _ready(self, incident_id: str) -> Incident:
        incident = await self._incidents.get(incident_id)
        if not incident.is_open:
            raise Conflict(f"{incident_id} is {incident.status.value}: no notices for a finished incident")
        if not incident.area_parts:
            raise Conflict(
                f"{incident_id} has no area yet: set it (PUT /api/incidents/{incident_id}/area) first"
            )
        return incident

    def _previews(
        self, template: str, channels: Sequence[Channel], context: NoticeContext,
        by_channel_language: dict[str, Counter[str]], area: PublicArea | None,
    ) -> list[Preview]:  # fmt: skip
        return render_previews(
            self._templates, template, channels, context, by_channel_language, area,
            default_language=self._settings.default_language, max_segments=self._settings.max_segments,
        )  # fmt: skip

    async def preview(
        self, incident_id: str, request: NoticeRequest, service: ServiceArea, buffer_m: float
    ) -> NoticePreview:
        """Counts and texts of the notice ``request`` would plan; nothing is stored."""
        incident = await self._ready(incident_id)
        channels, skipped = self._check_channels(request)
        area = public_area(incident, request.facts, service, self._settings.default_language)
        context = context_for(incident, request.facts, self._settings, area)
        stopped = {c: await self._store.opted_out_addresses(c.value) for c in channels}
        wanted = request.audience.priority if request.audience and request.audience.priority else None
        counts = await asyncio.to_thread(
            count_for_area, service, incident.area_parts, buffer_m, channels, wanted, stopped
        )
        missing = [] if area is not None else ["area"]
        previews = (
            self._previews(request.template.value, channels, context, counts.by_channel_language, area)
            if area is not None
            else []
        )
        return NoticePreview(
            incident_id=incident_id, template=request.template.value,
            channels=[c.value for c in channels], counts=counts.as_dict(), previews=previews,
            missing_facts=missing, message=_MISSING_AREA.format(id=incident_id) if missing else None,
            skipped_channels=skipped,
        )  # fmt: skip

    async def plan(
        self, incident_id: str, request: NoticeRequest, by: Principal, service: ServiceArea, buffer_m: float,
        *, action: str | None = None, auto_approve: bool = False, replaces: Notice | None = None,
    ) -> PlannedNotice:  # fmt: skip
        """Plan a notice: deliveries as drafts, counts and previews stored with it.

        A notice a person asks for without a public area text is refused; one a playbook
        plans (``action``) is stored *held*, saying which fact is missing, and never sent."""
        incident = await self._ready(incident_id)
        require_owner_or_command(incident, by)
        channels, skipped = self._check_channels(request)
        area = public_area(incident, request.facts, service, self._settings.default_language)
        if area is None and action is None:
            raise InvalidInput(
                "no public description of the area: give facts.area (or area_i18n), describe the area"
                f" (PUT /api/incidents/{incident_id}/area/description) or choose zones",
                code="missing_facts",
            )
        context = context_for(incident, request.facts, self._settings, area)
        number = await self._store.next_value(f"notice:{incident_id}")
        notice_id = f"{incident_id}-N{number}"
        now = isoformat(self._clock.now())
        counts = AudienceCounts()
        wanted = set(request.audience.priority) if request.audience and request.audience.priority else None
        # Numbers that texted STOP since the households file was made.
        stopped = {c: await self._store.opted_out_addresses(c.value) for c in channels}
        required = 1 if incident.drill else self._settings.approvals_required
        draft = Notice(
            notice_id=notice_id, incident_id=incident_id, template=request.template.value,
            channels=[c.value for c in channels], skipped_channels=skipped, status="planning",
            created_by=by.name, created_at=now, context=msgspec.to_builtins(context),
            request=msgspec.to_builtins(request),
            basis_seq=incident.last_seq, approvals_required=required, action=action,
            replaces=replaces.notice_id if replaces else None,
        )  # fmt: skip
        event: dict[str, Any] = {
            "notice_id": notice_id,
            "template": draft.template,
            "channels": draft.channels,
        }
        if action is not None:  # a playbook action: its key marks it done
            event["action"] = action
        if replaces is not None:
            event["replaces"] = replaces.notice_id
        steps: list[PlanStep] = []
        if replaces is not None:
            steps.append(
                PutNotice(msgspec.structs.replace(replaces, status="superseded", superseded_by=notice_id))
            )

        if area is None:  # a playbook notice: held, with the counts, until the fact is given
            found = await asyncio.to_thread(
                count_for_area, service, incident.area_parts, buffer_m, channels,
                list(wanted) if wanted else None, stopped,
            )  # fmt: skip
            held = msgspec.structs.replace(
                draft, status="held", counts=found.as_dict(), missing_facts=["area"],
                message=_MISSING_AREA.format(id=incident_id),
            )  # fmt: skip
            event.update(missing_facts=["area"], households=found.households)
            result = await self._store.apply_plan(
                [
                    *steps,
                    PutNotice(held),
                    AppendTo(
                        incident_id,
                        lambda s: [domain.EventDraft(type="notice_held", actor=by.name, data=event)],
                    ),
                ]
            )
            self._incidents.publish(result.appended)
            return PlannedNotice(held, [])

        def stream() -> Iterator[PlannedDelivery]:
            selection = resolve(service, incident.area_parts, buffer_m).selection
            households = iter_households(service.households, selection)
            if wanted is not None:
                households = (h for h in households if h.priority in wanted)
            return plan_deliveries(households, channels, counts, stopped=stopped)

        planned = await asyncio.to_thread(stream)
        await self._store.apply_plan([PutNotice(draft)])
        while batch := await asyncio.to_thread(_take, planned, BATCH):
            await self._store.add_deliveries([_delivery(notice_id, incident_id, d, now) for d in batch])
        previews = self._previews(draft.template, channels, context, counts.by_channel_language, area)
        notice = msgspec.structs.replace(draft, status="planned", counts=counts.as_dict(), previews=previews)
        event.update({k: v for k, v in notice.counts.items() if k != "by_channel_language"})
        if auto_approve:  # approved by the playbook at once; if cut short, on its next look
            event["auto_approve"] = True
        result = await self._store.apply_plan(
            [
                *steps,
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

    async def replan(
        self, incident_id: str, notice_id: str, by: Principal, service: ServiceArea, buffer_m: float
    ) -> PlannedNotice:
        """Plan a held or stale notice again with today's area and facts; the old one is
        superseded (and keeps its place in the playbook: the new one carries its action)."""
        old = await self._load(incident_id, notice_id)
        if old.status not in ("planned", "held"):
            raise Conflict(
                f"notice {notice_id} is {old.status}; only a planned or held notice can be planned again"
            )
        request = msgspec.convert(old.request, NoticeRequest)
        return await self.plan(incident_id, request, by, service, buffer_m, action=old.action, replaces=old)

    async def _load(self, incident_id: str, notice_id: str) -> Notice:
        notice = await self._store.get_notice(notice_id)
        if notice is None or notice.incident_id != incident_id:
            raise NotFound(f"no notice {notice_id} for {incident_id}")
        return notice

    async def _with_staleness(self, notices: list[Notice]) -> list[Notice]:
        waiting = [n for n in notices if n.status in ("planned", "held")]
        if not waiting:
            return notices
        events = await self._store.timeline(waiting[0].incident_id, min(n.basis_seq for n in waiting))
        out = []
        for n in notices:
            facts = stale_facts(n.basis_seq, events) if n.status in ("planned", "held") else []
            if facts and n.status == "planned":
                n = msgspec.structs.replace(
                    n, stale=True, stale_facts=facts,
                    message=f"stale: the {', '.join(f.replace('_', ' ') for f in facts)} changed after it was"
                    " planned; plan it again (POST …/replan) and read it before approving",
                )  # fmt: skip
            elif facts:
                n = msgspec.structs.replace(n, stale=True, stale_facts=facts)
            out.append(n)
        return out

    async def get(self, incident_id: str, notice_id: str) -> Notice:
        """The notice as it stands: ``stale`` worked out against the timeline."""
        [notice] = await self._with_staleness([await self._load(incident_id, notice_id)])
        return notice

    async def list_for(self, incident_id: str) -> list[Notice]:
        await self._incidents.get(incident_id)
        return await self._with_staleness(await self._store.list_notices(incident_id))

    async def approve(self, incident_id: str, notice_id: str, by: Principal) -> Notice:
        incident = await self._incidents.get(incident_id)
        require_owner_or_command(incident, by)
        notice = await self.get(incident_id, notice_id)
        if notice.status == "held":
            raise Conflict(f"notice {notice_id} is held: {notice.message}", code="notice_held")
        if notice.status != "planned":
            raise Conflict(f"notice {notice_id} is {notice.status}; only a planned notice can be approved")
        if notice.stale:
            raise Conflict(f"notice {notice_id} is {notice.message}", code="notice_stale")
        now = self._clock.now()
        person = not by.name.startswith(_SYSTEM_PREFIX)
        if person and any(a.by == by.name for a in notice.approvals):
            raise Conflict(
                f"{by.name} already approved {notice_id}: a second, different person must approve it",
                code="second_approver_needed",
            )
        approvals = [*notice.approvals, Approval(by=by.name, at=isoformat(now))]
        if person and len(approvals) < notice.approvals_required:
            recorded = msgspec.structs.replace(notice, approvals=approvals, stale=False, stale_facts=[])
            data = {"notice_id": notice_id, "by": by.name, "approvals": len(approvals),
                    "approvals_required": notice.approvals_required}  # fmt: skip
            result = await self._store.apply_plan(
                [
                    PutNotice(recorded),
                    AppendTo(
                        incident_id,
                        lambda s: [
                            domain.EventDraft(type="notice_approval_recorded", actor=by.name, data=data)
                        ],
                    ),
                ]
            )
            self._incidents.publish(result.appended)
            return recorded
        after = send_after(TemplateKey(notice.template), now, self._quiet)
        approved = msgspec.structs.replace(
            notice, status="approved", approved_by=by.name, approved_at=isoformat(now),
            send_after=isoformat(after) if after else None, approvals=approvals, stale=False, stale_facts=[],
        )  # fmt: skip
        data = {
            "notice_id": notice_id,
            "deliveries": notice.counts.get("deliveries", 0),
            "send_after": approved.send_after,
            "approved_by": [a.by for a in approvals],
        }
        # One transaction: a store failure must not leave it approved with nothing released.
        result = await self._store.apply_plan(
            [
                PutNotice(approved, release_drafts=True),
                AppendTo(
                    incident_id,
                    lambda s: [
                        domain.EventDraft(type="notice_approved", actor=by.name, data=data),
                        *domain.public_by_notice(s, notice_id, by.name),
                    ],
                ),
            ]
        )
        self._incidents.publish(result.appended)
        self.on_approved()
        return approved


def count_for_area(
    service: ServiceArea, parts: Sequence[dict[str, Any]], buffer_m: float, channels: Sequence[Channel],
    wanted: Sequence[Priority] | None, stopped: Mapping[Channel, AbstractSet[str]],
) -> AudienceCounts:  # fmt: skip
    """The audience counts of planning, by column operations (CPU work: run in a thread)."""
    table = service.households.households
    positions = notify_order(table, resolve(service, parts, buffer_m).selection.positions)
    if wanted is not None:
        ranks = np.array([PRIORITY_RANK[p] for p in wanted], np.int8)
        positions = positions[np.isin(table.priority_rank[positions], ranks)]
    return count_audience(table, positions, channels, AudienceCounts(), stopped=stopped)


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

    from incident.core.errors import ConfigError
    from incident.notices.checks import validate_templates
    from incident.notices.templates import NoticeTemplateError, load_templates

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
    errors = [p for p in problems if p.severity.value == "error" and not p.element]
    if errors:
        raise ConfigError(f"[notify] templates: {errors[0]}")
    for problem in problems:
        # A missing required element fails `incident templates check`, not the start: a
        # utility's own copies must not keep the service from notifying anyone.
        log.warning("notice templates: %s", problem)
    return templates
