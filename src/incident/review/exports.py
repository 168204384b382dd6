"""Review exports from the store: gather an incident's timeline, notices and deliveries, and
hand them to the pure builders (CPU work off the event loop). Used by the HTTP API and the
command line alike."""

from __future__ import annotations

import asyncio
from datetime import datetime

from incident.core.clock import isoformat
from incident.core.domain import fold
from incident.core.errors import NotFound
from incident.incidents.service import verify_incident
from incident.notices.templates import NoticeTemplates
from incident.review.after_action import ReachTally, after_action, render_report
from incident.review.cap import CapAlert, cap_alerts, sender_for
from incident.store import Store

#: Deliveries read per page while counting the households never reached.
PAGE = 5000


async def cap_export(
    store: Store, incident_id: str, templates: NoticeTemplates, utility_url: str
) -> list[CapAlert]:
    """The CAP alerts of every public notice of the incident (see :mod:`incident.review.cap`)."""
    events = await store.timeline(incident_id)
    if not events:
        raise NotFound(f"no incident {incident_id}")
    notices = {n.notice_id: n for n in await store.list_notices(incident_id)}
    return await asyncio.to_thread(cap_alerts, events, notices, templates, sender_for(utility_url))


async def reach_tally(store: Store, incident_id: str) -> ReachTally:
    tally = ReachTally()
    after = ""
    while True:
        page = await store.list_deliveries(incident_id, after, PAGE)
        tally.add(page)
        if len(page) < PAGE:
            return tally
        after = page[-1].delivery_id


async def after_action_report(store: Store, incident_id: str, now: datetime, timezone: str) -> str:
    """The after-action report as printable HTML (see :mod:`incident.review.after_action`)."""
    integrity = await verify_incident(store, incident_id)
    events = await store.timeline(incident_id)
    # The state these very events fold to (an event appended meanwhile is in both or neither).
    incident = fold(events)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    counts = await store.delivery_counts(incident_id)
    tally = await reach_tally(store, incident_id)
    report = after_action(incident, events, integrity, counts, tally, isoformat(now))
    return await asyncio.to_thread(render_report, report, timezone)
