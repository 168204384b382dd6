"""Incident flows: run a domain command through the store, then tell the live feed and metrics.

Takes ids and plain values; views parse requests and call these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from incident.core import domain
from incident.core.auth import Principal
from incident.core.domain import Declaration, Incident, Role, Severity, Status, TimelineEvent
from incident.core.errors import Conflict, InvalidInput, NotFound, NotOwner
from incident.core.metrics import Metrics
from incident.core.timeline import Integrity, verify
from incident.households import ServiceArea
from incident.incidents.area_worker import AreaWorker
from incident.incidents.areas import AreaLimits, AreaRequest, Deadline, Resolved, change, counts
from incident.incidents.live import LiveHub
from incident.store import Appended, Decider, Store


class IncidentService:
    def __init__(
        self, store: Store, hub: LiveHub, metrics: Metrics, area_worker: AreaWorker | None = None
    ) -> None:
        self.store = store
        self.hub = hub
        self._metrics = metrics
        #: Runs area geometry off the event loop, bounded and with a time limit.
        self.area_worker = area_worker or AreaWorker()
        #: Told of every committed change (the playbook engine reacts to them).
        self.listeners: list[Callable[[str, Sequence[TimelineEvent]], None]] = []

    def count_declared(self, declaration: Declaration) -> None:
        self._metrics.incidents_declared.labels(declaration.kind.value, declaration.utility.value).inc()

    def publish(self, appended: Sequence[Appended]) -> None:
        """Tell the live feed and metrics what a committed change did."""
        for a in appended:
            self._published(a)

    def _published(self, appended: Appended) -> Appended:
        for event in appended.events:
            self._metrics.timeline_events.labels(event.type).inc()
        if appended.events:
            self.hub.publish(appended.incident, appended.events)
            for listener in self.listeners:
                listener(appended.incident.id, appended.events)
        return appended

    async def declare(
        self,
        declaration: Declaration,
        by: Principal,
        service: ServiceArea | None = None,
        buffer_m: float = 30.0,
    ) -> Appended:
        # The dispatcher who declares owns the incident (first-responder ownership).
        owner = by.name if by.role in (Role.dispatcher, Role.admin) else None
        drafts = domain.declare(declaration, by.name, owner=owner)
        if declaration.area is not None:
            if service is None:
                raise InvalidInput("an area needs the service area, which is not loaded")
            # A drawn area comes with the declaration: check it and count its households
            # first, so a bad area refuses the whole declaration and nothing is stored.
            request = AreaRequest(geometry=declaration.area)
            limits = self.area_worker.limits
            data, _ = await self.area_worker.run(
                lambda deadline: _area_change(service, [], request, buffer_m, limits, deadline)
            )
            drafts.append(domain.EventDraft(type=domain.EventType.area_changed, actor=by.name, data=data))
        appended = await self.store.create_incident(lambda _id: drafts)
        self.count_declared(declaration)
        return self._published(appended)

    async def _act(self, incident_id: str, decide: Decider) -> Appended:
        return self._published(await self.store.append(incident_id, decide))

    async def change_status(
        self, incident_id: str, to: Status, by: Principal, reason: str | None
    ) -> Appended:
        def decide(state: Incident) -> list[domain.EventDraft]:
            _require_owner_or_command(state, by)
            return domain.change_status(state, to, by.name, reason)

        return await self._act(incident_id, decide)

    async def change_severity(
        self, incident_id: str, to: Severity, by: Principal, reason: str | None
    ) -> Appended:
        def decide(state: Incident) -> list[domain.EventDraft]:
            _require_owner_or_command(state, by)
            return domain.change_severity(state, to, by.name, reason)

        return await self._act(incident_id, decide)

    async def set_etr(self, incident_id: str, etr: datetime, by: Principal, reason: str | None) -> Appended:
        def decide(state: Incident) -> list[domain.EventDraft]:
            _require_owner_or_command(state, by)
            return domain.set_etr(state, etr, by.name, reason)

        return await self._act(incident_id, decide)

    async def add_note(self, incident_id: str, text: str, by: Principal) -> Appended:
        return await self._act(incident_id, lambda state: domain.add_note(state, text, by.name))

    async def confirm(self, incident_id: str, by: Principal) -> Appended:
        return await self._act(incident_id, lambda state: domain.confirm(state, by.name, by.role))

    async def hand_over(self, incident_id: str, to: str, by: Principal, reason: str | None) -> Appended:
        return await self._act(
            incident_id, lambda state: domain.hand_over(state, to, by.name, by.role, reason)
        )

    async def set_area(
        self, incident_id: str, request: AreaRequest, by: Principal, service: ServiceArea, buffer_m: float,
        *, action: str | None = None,
    ) -> tuple[Appended, Resolved]:  # fmt: skip
        """Replace the area or add/remove a part; the event records households before and after."""
        current = await self.get(incident_id)
        _require_owner_or_command(current, by)

        # Geometry and household queries are CPU work: keep the event loop free meanwhile.
        limits = self.area_worker.limits
        data, resolved = await self.area_worker.run(
            lambda deadline: _area_change(service, current.area_parts, request, buffer_m, limits, deadline)
        )
        if action is not None:  # a playbook action: its key marks it done
            data["action"] = action

        def decide(state: Incident) -> list[domain.EventDraft]:
            if state.area_parts != current.area_parts:
                raise Conflict(f"the area of {incident_id} changed meanwhile; look at it again and retry")
            _require_owner_or_command(state, by)
            return domain.change_area(state, data, by.name)

        return await self._act(incident_id, decide), resolved

    async def describe_area(self, incident_id: str, description: dict[str, str], by: Principal) -> Appended:
        """The area as households know it, per language: notices say this for "where"."""

        def decide(state: Incident) -> list[domain.EventDraft]:
            _require_owner_or_command(state, by)
            return domain.describe_area(state, description, by.name)

        return await self._act(incident_id, decide)

    async def set_public(self, incident_id: str, public: bool, by: Principal, reason: str | None) -> Appended:
        """Show the incident to residents (public page, feeds) or take it off; never a drill."""

        def decide(state: Incident) -> list[domain.EventDraft]:
            _require_owner_or_command(state, by)
            return domain.set_public(state, public, by.name, reason)

        return await self._act(incident_id, decide)

    async def get(self, incident_id: str) -> Incident:
        incident = await self.store.get_incident(incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        return incident

    async def list_incidents(
        self, statuses: Collection[Status] | None, limit: int, after: tuple[str, str] | None = None
    ) -> list[Incident]:
        return await self.store.list_incidents(statuses, limit, after)

    async def timeline(
        self, incident_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[TimelineEvent]:
        await self.get(incident_id)
        return await self.store.timeline(incident_id, after_seq, limit)

    async def verify(self, incident_id: str) -> Integrity:
        return await verify_incident(self.store, incident_id)


async def verify_incident(store: Store, incident_id: str) -> Integrity:
    """Check an incident's chain against its record."""
    # Events first, then the record: an append between the two reads shows as a record
    # ahead of the chain, so read again rather than report a deletion that did not happen.
    for _ in range(5):
        events = await store.timeline(incident_id)
        stored = await store.get_incident(incident_id)
        if stored is None:
            raise NotFound(f"no incident {incident_id}")
        if stored.last_seq <= len(events):
            break
    # Hashing and folding a long timeline is CPU work: off the event loop.
    return await asyncio.to_thread(verify, incident_id, events, stored)


def _area_change(
    service: ServiceArea, current: list[dict[str, Any]], request: AreaRequest, buffer_m: float,
    limits: AreaLimits, deadline: Deadline,
) -> tuple[dict[str, Any], Resolved]:  # fmt: skip
    """What an ``area_changed`` event records: the parts, the polygon, households before and after."""
    changed = change(service, current, request, buffer_m, limits, deadline)
    after = changed.after
    found = counts(service, after.selection)
    data = {
        "op": request.op,
        "part": changed.parts[-1],
        "parts": changed.parts,
        "geometry": after.geometry,
        "households_before": changed.households_before,
        "households_after": found["households"],
        "by_priority": found["by_priority"],
        "by_language": found["by_language"],
        "valves_to_close": list(after.valves_to_close),
        "affected_pipes": list(after.affected_pipes),
    }
    return data, after


def require_owner_or_command(state: Incident, by: Principal) -> None:
    """Steering an incident is for its owner, command staff and admins."""
    _require_owner_or_command(state, by)


def _require_owner_or_command(state: Incident, by: Principal) -> None:
    """Only the owner (or command staff, or an admin) steers an owned incident."""
    if by.role == Role.dispatcher and state.owner is not None and state.owner != by.name:
        raise NotOwner(
            f"{state.id} is owned by {state.owner}; ask them or command staff to hand it over to you"
        )
