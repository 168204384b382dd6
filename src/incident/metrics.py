"""Prometheus metrics, one registry per app. Labels come from closed sets only
(route templates, methods, status codes, event types): never ids or phone numbers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "incident_http_requests", "HTTP requests served", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "incident_http_request_seconds",
            "Time to serve an HTTP request",
            ["route"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.timeline_events = Counter(
            "incident_timeline_events", "Timeline events appended", ["type"], registry=r
        )
        self.incidents_declared = Counter(
            "incident_incidents_declared", "Incidents declared", ["kind", "utility"], registry=r
        )
        self.live_clients = Gauge("incident_live_clients", "Connected live-feed clients", registry=r)
        self.live_dropped = Counter(
            "incident_live_clients_dropped", "Live clients dropped for falling behind", registry=r
        )
