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
        self.reloads = Counter(
            "incident_reloads",
            "Looks that found tokens or households changed from the command line, by outcome",
            ["what", "outcome"],
            registry=r,
        )
        self.live_clients = Gauge("incident_live_clients", "Connected live-feed clients", registry=r)
        self.live_dropped = Counter(
            "incident_live_clients_dropped", "Live clients dropped for falling behind", registry=r
        )
        self.live_bridge = Counter(
            "incident_live_bridge_messages",
            "Live-feed messages bridged between instances through Kafka: out, in, dropped (the queue"
            " to Kafka was full), unreadable (not a message an instance writes: skipped)",
            ["direction"],
            registry=r,
        )
        # Ingest from Kafka
        self.reports_consumed = Counter("incident_reports_consumed", "Report messages read", registry=r)
        self.reports_stored = Counter("incident_reports_stored", "New reports stored", registry=r)
        self.reports_duplicate = Counter(
            "incident_reports_duplicate", "Reports already stored (replays, resends)", registry=r
        )
        self.reports_dead_lettered = Counter(
            "incident_reports_dead_lettered", "Reports sent to the dead-letter topic", ["code"], registry=r
        )
        self.ingest_errors = Counter(
            "incident_ingest_errors",
            "Ingest batches that failed and were retried (stage dead_letter: one publish)",
            ["stage"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "incident_reports_consumer_lag", "Report messages behind the end of the topic", registry=r
        )
        self.ingest_stalled = Gauge(
            "incident_ingest_stalled",
            "1 when ingest has made no progress for [kafka] stall_after_s while reports wait",
            registry=r,
        )
        self.report_observed_to_stored = Histogram(
            "incident_report_observed_to_stored_seconds",
            "From a report's observed_at to stored",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
        )
        self.report_kafka_to_stored = Histogram(
            "incident_report_kafka_to_stored_seconds",
            "From the Kafka message timestamp to stored",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.deliveries = Counter(
            "incident_deliveries", "Delivery state changes", ["channel", "state"], registry=r
        )
        self.email_server_refusals = Counter(
            "incident_email_server_refusals",
            "Times the SMTP server refused us rather than a recipient or message (its greeting,"
            " STARTTLS, login or MAIL FROM), by step: a server or configuration problem; retried",
            ["step"],
            registry=r,
        )
        self.enrolments_refused = Counter(
            "incident_enrolments_refused",
            "Sign-ups refused by a rate limit (client, contact, or service: codes per hour)",
            ["limit"],
            registry=r,
        )
        self.kafka_up = Gauge("incident_kafka_up", "1 when the Kafka broker answers", registry=r)
        self.notify_oldest_due = Gauge(
            "incident_notify_oldest_due_seconds",
            "How long the longest-waiting delivery due to be sent has waited (0: none due),"
            " as of the fan-out's last look (every few seconds)",
            registry=r,
        )
