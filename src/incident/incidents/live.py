"""The live feed hub: every appended timeline event goes to every subscribed client.

Publishing never waits: each client has a bounded queue, and a client whose queue is full
is dropped (it reconnects and catches up from the timeline), so one slow wall display can
never slow the service or the other clients.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from typing import Literal

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


#: What a live message is about: an incident's event, its delivery counts, or a report.
MessageKind = Literal["event", "deliveries", "report"]
#: Where an instance's messages also go, for the other instances' clients (see live_bridge).
Relay = Callable[[MessageKind, str, str], None]


class LiveHub:
    def __init__(self, metrics: Metrics, client_queue: int) -> None:
        self._metrics = metrics
        self._client_queue = client_queue
        self._subscribers: set[Subscriber] = set()
        self.relay: Relay | None = None

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
            build = functools.partial(LiveMessage, event=event, incident=incident)
            self._publish("event", event.incident_id, build)

    def publish_report(self, report: StoredReport) -> None:
        """Reports go to clients that watch everything, not to those filtered by incident."""
        self._publish("report", "", lambda: LiveReport(report=report))

    def publish_deliveries(self, incident_id: str, counts: dict[str, dict[str, int]]) -> None:
        """Delivery progress of an incident: per channel, per state."""
        build = lambda: LiveDeliveries(incident_id=incident_id, counts=counts)  # noqa: E731
        self._publish("deliveries", incident_id, build)

    def deliver(self, kind: MessageKind, incident_id: str, message: str) -> None:
        """A message another instance published, to this instance's clients."""
        for sub in self._audience(kind, incident_id):
            self._put(sub, message)

    def _publish(self, kind: MessageKind, incident_id: str, build: Callable[[], msgspec.Struct]) -> None:
        message: str | None = None  # encoded once, and only if someone listens
        for sub in self._audience(kind, incident_id):
            if message is None:
                message = _encode(build()).decode()
            self._put(sub, message)
        if self.relay is not None:
            self.relay(kind, incident_id, message if message is not None else _encode(build()).decode())

    def _audience(self, kind: MessageKind, incident_id: str) -> list[Subscriber]:
        if kind == "report":
            return [sub for sub in self._subscribers if sub.incidents is None]
        return [sub for sub in self._subscribers if sub.wants(incident_id)]

    def _put(self, sub: Subscriber, message: str) -> None:
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
