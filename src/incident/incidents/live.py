"""The live feed hub: every appended timeline event goes to every subscribed client.

Publishing never waits: each client has a bounded queue, and a client whose queue is full
is dropped (it reconnects and catches up from the timeline), so one slow wall display can
never slow the service or the other clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import msgspec

from incident.core.domain import Incident, TimelineEvent
from incident.core.metrics import Metrics
from incident.reports.model import StoredReport


class LiveMessage(msgspec.Struct, frozen=True, tag_field="type", tag="event"):
    event: TimelineEvent
    incident: Incident


class LiveDeliveries(msgspec.Struct, frozen=True, tag_field="type", tag="deliveries"):
    incident_id: str
    counts: dict[str, dict[str, int]]


class LiveReport(msgspec.Struct, frozen=True, tag_field="type", tag="report"):
    """A report arrived or changed triage status (for the dispatchers' triage queue)."""

    report: StoredReport


_encode = msgspec.json.Encoder().encode


class Subscriber:
    def __init__(self, incidents: Collection[str] | None, maxsize: int) -> None:
        self.incidents = frozenset(incidents) if incidents else None
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.dropped = asyncio.Event()

    def wants(self, incident_id: str) -> bool:
        return self.incidents is None or incident_id in self.incidents


class LiveHub:
    def __init__(self, metrics: Metrics, client_queue: int) -> None:
        self._metrics = metrics
        self._client_queue = client_queue
        self._subscribers: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, incidents: Collection[str] | None = None) -> Subscriber:
        sub = Subscriber(incidents, self._client_queue)
        self._subscribers.add(sub)
        self._metrics.live_clients.set(len(self._subscribers))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        self._metrics.live_clients.set(len(self._subscribers))

    def publish(self, incident: Incident, events: Collection[TimelineEvent]) -> None:
        for event in events:
            message: str | None = None  # encoded once, and only if someone listens
            for sub in list(self._subscribers):
                if not sub.wants(event.incident_id):
                    continue
                if message is None:
                    message = _encode(LiveMessage(event=event, incident=incident)).decode()
                try:
                    sub.queue.put_nowait(message)
                except asyncio.QueueFull:
                    self._drop(sub)

    def publish_report(self, report: StoredReport) -> None:
        """Reports go to clients that watch everything, not to those filtered by incident."""
        message: str | None = None
        for sub in list(self._subscribers):
            if sub.incidents is not None:
                continue
            if message is None:
                message = _encode(LiveReport(report=report)).decode()
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(sub)

    def publish_deliveries(self, incident_id: str, counts: dict[str, dict[str, int]]) -> None:
        """Delivery progress of an incident: per channel, per state."""
        message: str | None = None
        for sub in list(self._subscribers):
            if not sub.wants(incident_id):
                continue
            if message is None:
                message = _encode(LiveDeliveries(incident_id=incident_id, counts=counts)).decode()
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(sub)

    def close_all(self) -> None:
        """At shutdown: let every client go."""
        for sub in list(self._subscribers):
            sub.dropped.set()
            self.unsubscribe(sub)

    def _drop(self, sub: Subscriber) -> None:
        self.unsubscribe(sub)
        sub.dropped.set()
        self._metrics.live_dropped.inc()
