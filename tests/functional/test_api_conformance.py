"""The API answers as its own OpenAPI document says, for every route and every role.

Schemathesis reads ``/api/openapi.json`` from the real app (SQLite store, the session broker)
served on a loopback port, and for each operation sends requests built from the document:
boundary values (its coverage phase) and a few seeded random ones (fuzzing), each as the
dispatcher, command, reviewer and admin. Every answer must be documented: its status code, its
content type, its headers and its body's schema; no 5xx; schema-valid requests are not refused
for reasons the schema could have stated, and invalid ones are refused.

Path parameters are also tried with ids that exist (an incident with an area and a notice, a
report, a pipe, a playbook): random ids only ever reach the 404 branch.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web

from incident.api.openapi import build_openapi
from incident.app import all_endpoints, create_app
from incident.core.clock import ManualClock
from incident.core.domain import Kind, Role, Severity, Utility
from incident.intake.triage import ingest_planner
from incident.keys import SERVICE_AREA, STORE
from incident.reports.model import Location, Report
from incident.settings import CorrelationSettings, load_settings
from incident.store.ports import IncomingReport
from tests.support.env import Broker, Tokens, kafka_env

pytestmark = pytest.mark.filterwarnings(
    # schemathesis's own strategies draw from `random` (not this project's code)
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning",
)

PEOPLE = {Role.dispatcher: "alice", Role.command: "carol", Role.reviewer: "rita", Role.admin: "root"}
#: Small, and the same every run: the whole test stays within a few minutes on two cores.
MAX_EXAMPLES = 4
SEED = 20261122
#: What a request the schema allows may be answered with (schemathesis's default list).
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]


def _rules_beyond_the_schema(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations that may answer 422 to a request the schema allows: a body breaking a rule
    no schema states (no stage of that name, nobody of that name has a token), an
    Idempotency-Key sent again with another body, a cursor this list never gave, a valve the
    network does not have (``inoperable``). Elsewhere a
    422 means the document failed to state a rule (a bound, an enum) and fails the test."""
    ids = []
    for ops in doc["paths"].values():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", [])}
            if "requestBody" in op or names & {"Idempotency-Key", "cursor", "inoperable"}:
                ids.append(op["operationId"])
    return [
        {
            "include-operation-id": i,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
        }
        for i in ids
    ]


class Served:
    """The app on a loopback port, run by an event loop of its own in a thread (schemathesis
    calls it synchronously from the test's thread)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-app", daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app)
        self.port = self.run(self._start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    tokens = Tokens(tmp_path_factory.mktemp("tokens") / "tokens.toml")
    for role, name in PEOPLE.items():
        tokens.add(name, role)
    return tokens


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, broker: Broker, people: Tokens) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("store") / "incident.db"
    settings = load_settings(
        None,
        {
            "INCIDENT_STORE__URL": f"sqlite:///{db}",
            "INCIDENT_AUTH__TOKENS_FILE": str(people.path),
            "INCIDENT_HTTP__MAX_BODY_BYTES": "4096",
            **kafka_env(broker),
        },
    )
    clock = ManualClock(datetime(2026, 11, 22, 8, 15, tzinfo=UTC))
    served = Served(create_app(settings, clock=clock))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def known_ids(served: Served, people: Tokens) -> dict[str, str]:
    """Things that exist, for the path parameters of the same names."""

    def _call(method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(
            method, served.url + path, json=body, headers=people.header("alice"), timeout=30
        )
        assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
        return resp.json()

    incident = _call("POST", "/api/incidents", body={
        "kind": "main_break", "utility": "water", "title": "Main break on Elm St", "severity": "high",
    })  # fmt: skip
    iid = incident["id"]
    _call("PUT", f"/api/incidents/{iid}/area",
          body={"around": {"lon": -85.6, "lat": 38.04, "radius_m": 300}})  # fmt: skip
    notice = _call("POST", f"/api/incidents/{iid}/notices",
                   body={"template": "main_break", "channels": ["sms", "voice"],
                         "facts": {"area": "Elm St between 1st and 5th Ave"}})  # fmt: skip
    report = Report(
        report_id="cc-1", kind=Kind.low_pressure, utility=Utility.water, source="call-centre",
        severity=Severity.medium, observed_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        location=Location(-85.61, 38.04), summary="customer reports low pressure",
    )  # fmt: skip
    served.run(served.app[STORE].ingest_reports([IncomingReport(report, "test")],
                                                ingest_planner(CorrelationSettings())))  # fmt: skip
    network = served.app[SERVICE_AREA].value.network
    assert network is not None
    playbooks = _call("GET", "/api/playbooks")["playbooks"]
    return {
        "incident_id": iid,
        "notice_id": notice["notice"]["notice_id"],
        "report_id": "cc-1",
        "pipe_id": next(iter(network.link_index)),
        "name": playbooks[0]["name"] if playbooks else "main_break",
        "file": "app.css",
        "package": "maplibre-gl",
    }


#: The document the app serves is built from this same table; the test checks they agree.
DOCUMENT = json.loads(json.dumps(build_openapi(all_endpoints())))
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            "operations": [
                *_rules_beyond_the_schema(DOCUMENT),
                # A WebSocket: schemathesis cannot make the upgrade, and without it the answer is
                # the documented 400 (tests/functional/test_live.py speaks WebSocket to it).
                {"include-path": "/api/live", "checks": {"positive_data_acceptance": {"enabled": False}}},
            ],
        }
    ),
)


def test_the_served_document_is_the_one_tested(served: Served) -> None:
    assert requests.get(served.url + "/api/openapi.json", timeout=30).json() == DOCUMENT


def _with_known_ids(case: schemathesis.Case, known: dict[str, str]) -> bool:
    """Point the case's path at things that exist, unless its path is the invalid part."""
    meta = case.meta
    if not case.path_parameters or (meta is not None and meta.generation.mode.is_negative):
        return False
    case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
    return True


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_answer_is_documented(
    case: schemathesis.Case, served: Served, people: Tokens, known_ids: dict[str, str]
) -> None:
    for name in PEOPLE.values():
        case.call_and_validate(base_url=served.url, headers=people.header(name))
    if _with_known_ids(case, known_ids):
        for name in PEOPLE.values():
            case.call_and_validate(base_url=served.url, headers=people.header(name))
