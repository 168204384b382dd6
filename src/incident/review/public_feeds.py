"""The public feeds as served: gathered from the store, built by the pure builders
(:mod:`incident.review.cap`, :mod:`incident.review.feeds`) and kept in memory until a public
incident changes.

Which incidents: public ones (a dispatcher made them so, or a notice to households was
approved), never drills. The GeoJSON has the open ones; the CAP feed also keeps a closed or
cancelled one for ``[feeds] closed_hours``, its alerts ending in a Cancel that references them.

The key of what is built is the public incidents' ids and last sequence numbers (and the
links' base): a change to any of them, on this instance or another, makes a new key. The
store is asked for it at most every ``[feeds] recheck_s`` (this instance's own changes reach
:meth:`PublicFeeds.changed` and are looked at on the next request); one request looks (and
builds) at a time, the others meanwhile get the feeds as kept. An incident's alerts are
built again only when its timeline moved.

Last-Modified is the newest change the feed shows: the newest ``updated_at`` of its
incidents, or the moment a closed incident left the CAP feed if later (so a feed that shrank
is newer, not older, than it was). Answering ``If-Modified-Since`` with 304 only when it is
that very date, and ETags of the bytes, make every instance give the same answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from incident.core.clock import Clock, isoformat
from incident.core.domain import OPEN_STATUSES, Incident, Status, TimelineEvent
from incident.notices.templates import NoticeTemplates
from incident.review.cap import CapAlert, cap_alerts, sender_for
from incident.review.feeds import EPOCH, Built, FeedInfo, atom_feed, built, outages_geojson
from incident.settings import FeedSettings
from incident.store import Store

log = logging.getLogger(__name__)

__all__ = ["ATOM", "CAP_XML", "FEED_PATH", "GEOJSON", "PublicFeeds", "Snapshot", "alert_path"]

ATOM = "application/atom+xml"
CAP_XML = "application/cap+xml"
GEOJSON = "application/geo+json"
FEED_PATH = "/public/feeds/cap.atom"
#: Open incidents looked at (newest first); closed ones looked at for the CAP feed's window.
OPEN_LIMIT = 500
CLOSED_LIMIT = 200
_ENDED = frozenset({Status.closed, Status.cancelled})


def alert_path(identifier: str) -> str:
    return f"/public/feeds/cap/{identifier}.xml"


@dataclass(frozen=True)
class Snapshot:
    """Both feeds and every alert of the CAP feed, as of ``key``."""

    key: tuple[object, ...]
    atom: Built
    outages: Built
    alerts: dict[str, Built] = field(default_factory=dict)


@dataclass(frozen=True)
class _Selection:
    open: list[Incident]
    #: The CAP feed's incidents: open and lately ended public ones, newest first.
    cap: list[Incident]
    #: Newest change shown (ISO).
    modified: str


class PublicFeeds:
    def __init__(
        self,
        store: Store,
        templates: NoticeTemplates,
        settings: FeedSettings,
        *,
        utility_name: str,
        utility_url: str,
        base_url: Callable[[], str],
        clock: Clock,
    ) -> None:
        self._store = store
        self._templates = templates
        self._settings = settings
        self._utility_name = utility_name
        self._utility_url = utility_url
        self._sender = sender_for(utility_url)
        self._base_url = base_url
        self._clock = clock
        self._lock = asyncio.Lock()
        self._snapshot: Snapshot | None = None
        self._checked_at = float("-inf")
        #: Bumped by every change here: a look that began before it is not trusted for long.
        self._generation = 0
        self._alerts: dict[str, tuple[int, list[CapAlert]]] = {}
        #: How many times the feeds were built (for tests and the benchmark).
        self.builds = 0

    def changed(self, incident_id: str, events: Sequence[TimelineEvent]) -> None:
        """An incident changed on this instance (an :class:`IncidentService` listener)."""
        self._generation += 1
        self._checked_at = float("-inf")

    async def atom(self) -> Built:
        if not self._settings.cache:
            selection = await self._select()
            return await self._atom(selection, await self._cap_alerts(selection, reuse=False))
        return (await self.current()).atom

    async def outages(self) -> Built:
        if not self._settings.cache:
            selection = await self._select()
            return built(outages_geojson(selection.open), selection.modified, GEOJSON)
        return (await self.current()).outages

    async def alert(self, identifier: str) -> Built | None:
        """One alert of the CAP feed, or None when the feed has no such alert."""
        if not self._settings.cache:
            alerts = await self._cap_alerts(await self._select(), reuse=False)
            found = next((a for a in alerts if a.identifier == identifier), None)
            return None if found is None else _alert_document(found)
        return (await self.current()).alerts.get(identifier)

    async def current(self) -> Snapshot:
        """The feeds as of now: the kept ones while nothing changed."""
        snapshot = self._snapshot
        if self._fresh(snapshot) or (snapshot is not None and self._lock.locked()):
            # Fresh, or another request is looking: the kept feeds meanwhile (a request
            # waiting for the look would gain a few milliseconds of news, and all of them
            # waiting makes the slowest answers slow).
            assert snapshot is not None
            return snapshot
        async with self._lock:
            snapshot = self._snapshot
            if self._fresh(snapshot):
                assert snapshot is not None
                return snapshot
            generation = self._generation
            selection = await self._select()
            key = self._key(selection)
            if snapshot is None or snapshot.key != key:
                snapshot = await self._build(selection, key)
                self._snapshot = snapshot
            if generation == self._generation:
                self._checked_at = time.monotonic()
            return snapshot

    def _fresh(self, snapshot: Snapshot | None) -> bool:
        if snapshot is None:
            return False
        return time.monotonic() - self._checked_at < self._settings.recheck_s

    def base(self) -> str:
        return (self._settings.base_url or self._base_url()).rstrip("/")

    def _key(self, selection: _Selection) -> tuple[object, ...]:
        seqs = tuple((i.id, i.last_seq) for i in selection.cap)
        return (self.base(), selection.modified, seqs)

    async def _select(self) -> _Selection:
        opened = await self._store.list_incidents(OPEN_STATUSES, OPEN_LIMIT)
        ended = await self._store.list_incidents(_ENDED, CLOSED_LIMIT)
        now = self._clock.now()
        window = timedelta(hours=self._settings.closed_hours)
        shown = [i for i in opened if _public(i)]
        recent: list[Incident] = []
        modified = [i.updated_at for i in shown]
        for incident in ended:
            if not _public(incident) or incident.closed_at is None:
                continue
            leaves = datetime.fromisoformat(incident.closed_at) + window
            if leaves > now:
                recent.append(incident)
                modified.append(incident.updated_at)
            else:
                modified.append(isoformat(leaves))
        cap = sorted([*shown, *recent], key=lambda i: (i.declared_at, i.id), reverse=True)
        newest = max(modified, key=_instant, default=EPOCH)
        return _Selection(open=shown, cap=cap, modified=newest)

    async def _build(self, selection: _Selection, key: tuple[object, ...]) -> Snapshot:
        self.builds += 1
        alerts = await self._cap_alerts(selection, reuse=True)
        geojson = await asyncio.to_thread(outages_geojson, selection.open)
        return Snapshot(
            key=key,
            atom=await self._atom(selection, alerts),
            outages=built(geojson, selection.modified, GEOJSON),
            alerts={a.identifier: _alert_document(a) for a in alerts},
        )

    async def _cap_alerts(self, selection: _Selection, *, reuse: bool) -> list[CapAlert]:
        """The alerts of the CAP feed's incidents; ``reuse``: those of an incident whose
        timeline did not move since they were built are not built again."""
        alerts: list[CapAlert] = []
        keep: dict[str, tuple[int, list[CapAlert]]] = {}
        for incident in selection.cap:
            kept = self._alerts.get(incident.id) if reuse else None
            if kept is None or kept[0] != incident.last_seq:
                kept = (incident.last_seq, await self._incident_alerts(incident.id))
            keep[incident.id] = kept
            alerts.extend(kept[1])
        if reuse:
            self._alerts = keep
        return alerts

    async def _atom(self, selection: _Selection, alerts: list[CapAlert]) -> Built:
        base = self.base()
        info = FeedInfo(
            feed_id=f"{self._sender}:public-alerts",
            self_url=f"{base}{FEED_PATH}" if base else "cap.atom",
            title=f"{self._utility_name}: public alerts",
            author=self._utility_name,
            web=self._utility_url,
        )

        def link(alert: CapAlert) -> str:
            path = alert_path(alert.identifier)
            return f"{base}{path}" if base else path.removeprefix("/public/feeds/")

        atom = await asyncio.to_thread(atom_feed, info, alerts, link)
        return built(atom, selection.modified, ATOM)

    async def _incident_alerts(self, incident_id: str) -> list[CapAlert]:
        """The incident's alerts; none when they cannot be built (a bug, or data no version
        of the builders expected): one incident never takes the feed of all down. The store
        failing is not this: it fails the request (503), and the next one tries again."""
        events = await self._store.timeline(incident_id)
        notices = {n.notice_id: n for n in await self._store.list_notices(incident_id)}
        try:
            return await asyncio.to_thread(
                partial(cap_alerts, public=True),
                events,
                notices,
                self._templates,
                self._sender,
            )
        except Exception:
            log.exception("CAP alerts of %s not built; left out of the public feed", incident_id)
            return []


def _alert_document(alert: CapAlert) -> Built:
    return built(alert.document().encode(), alert.sent, CAP_XML)


def _public(incident: Incident) -> bool:
    return incident.public and not incident.drill


def _instant(iso: str) -> datetime:
    return datetime.fromisoformat(iso)
