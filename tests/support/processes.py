"""The service as a real process that a test kills with SIGKILL, a Twilio-compatible carrier
in a process of its own (so it outlives the service and counts what it was really sent),
reports produced on the session broker, and the real store read back afterwards (the fault
suite and bench/recovery.py)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from incident.adapters.kafka import free_port
from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DrillConfig
from incident.carriersim.server import serve_drill
from incident.core.auth import add_token
from incident.core.clock import SystemClock
from incident.core.domain import Role
from incident.settings import BUNDLED_DIR, StoreSettings
from incident.store import Store, open_store
from tests.support.env import Broker

INCIDENT = [sys.executable, "-m", "incident"]
ROOT = Path(__file__).resolve().parents[2]
SAMPLE_HOUSEHOLDS = BUNDLED_DIR / "sample" / "households.csv"


# --- the carrier: a Twilio-compatible server in a process of its own ---------------------


def _carrier_main(ready: Any, config: bytes) -> None:
    import msgspec

    async def serve() -> None:
        async with serve_drill(msgspec.json.decode(config, type=DrillConfig)) as drill:
            ready.put(drill.url)
            await asyncio.Event().wait()

    asyncio.run(serve())


@dataclass
class Carrier:
    url: str
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN

    async def messages(self) -> list[dict[str, Any]]:
        """Every message the carrier took, through Twilio's own list resource."""
        auth = {"Authorization": aiohttp.encode_basic_auth(self.account_sid, self.auth_token)}
        found: list[dict[str, Any]] = []
        path: str | None = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?PageSize=1000"
        async with aiohttp.ClientSession(headers=auth) as http:
            while path:
                async with http.get(self.url + path) as resp:
                    assert resp.status == 200, await resp.text()
                    page = await resp.json()
                found += page["messages"]
                path = page.get("next_page_uri")
        return found

    async def count_by_number(self) -> Counter[str]:
        return Counter(m["to"] for m in await self.messages())


@contextlib.asynccontextmanager
async def carrier_process(config: DrillConfig) -> AsyncIterator[Carrier]:
    import msgspec

    spawn = multiprocessing.get_context("spawn")

    def start() -> tuple[Any, str]:  # a process start blocks: off the event loop
        ready: Any = spawn.Queue()
        proc = spawn.Process(target=_carrier_main, args=(ready, msgspec.json.encode(config)), daemon=True)
        proc.start()
        return proc, ready.get(True, 30)

    proc, url = await asyncio.to_thread(start)
    try:
        yield Carrier(url)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.join, 10)


# --- the service as a process -------------------------------------------------------------


def households_file(path: Path, count: int) -> tuple[Path, set[str]]:
    """The first ``count`` households of the sample area that take SMS; their SMS numbers."""
    numbers: set[str] = set()
    with SAMPLE_HOUSEHOLDS.open() as src, path.open("w", newline="") as out:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or ()))
        writer.writeheader()
        for row in reader:
            if not row["sms"] or "sms" in row["opt_out"].split("|") or row["sms"] in numbers:
                continue
            writer.writerow(row)
            numbers.add(row["sms"])
            if len(numbers) == count:
                break
    return path, numbers


@dataclass
class Service:
    """``incident serve`` in a child process; ``kill()`` is SIGKILL, ``start()`` again after."""

    env: dict[str, str]
    port: int
    tokens: dict[str, str]
    logs: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, limit: float = 60.0) -> None:
        self.starts += 1
        self.logs.append(f"--- start {self.starts} ---")
        self.proc = await asyncio.create_subprocess_exec(
            *INCIDENT, "serve", env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        listening = asyncio.Event()
        self._reader = asyncio.create_task(self._read(self.proc, listening))
        ready = asyncio.create_task(listening.wait())
        exited = asyncio.create_task(self.proc.wait())
        await asyncio.wait({ready, exited}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if not listening.is_set():
            await self.kill()
            raise AssertionError("the service did not start:\n" + self.log_tail())

    async def _read(self, proc: asyncio.subprocess.Process, listening: asyncio.Event) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.logs.append(line)
            if re.search(r"listening on http://", line):
                listening.set()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader

    async def stop(self) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc is not None else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                code = await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError("the service did not stop on SIGTERM:\n" + self.log_tail()) from None
        if self._reader is not None:
            await self._reader
        return code

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs[-lines:])

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        who: str = "alice",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {self.tokens[who]}", **(headers or {})}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
            http.request(method, self.url + path, json=body, headers=hdrs) as resp,
        ):
            data = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, data

    async def health(self) -> tuple[int, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
                http.get(self.url + "/healthz") as resp,
            ):
                return resp.status, await resp.json()
        except aiohttp.ClientError as err:
            return 0, str(err)


@dataclass
class Faults:
    """Settings shared by one fault test: topics and groups of its own, a store, a port."""

    tmp: Path
    broker: Broker
    store_url: str
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    #: Every service made, so that a test that fails half-way leaves no process behind.
    services: list[Service] = field(default_factory=list)

    @property
    def reports_topic(self) -> str:
        return f"reports-{self.suffix}"

    @property
    def dead_letter_topic(self) -> str:
        return f"reports-{self.suffix}.dlq"

    async def service(self, **overrides: str) -> Service:
        """A service of this test's settings (not started); writing its tokens blocks: off the loop."""
        return await asyncio.to_thread(self._service, overrides)

    def _service(self, overrides: dict[str, str]) -> Service:
        tokens_file = self.tmp / "tokens.toml"
        tokens = {
            "alice": add_token(tokens_file, "alice", Role.dispatcher),
            "root": add_token(tokens_file, "root", Role.admin),
        }
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")},
            "INCIDENT_STORE__URL": self.store_url,
            "INCIDENT_AUTH__TOKENS_FILE": str(tokens_file),
            "INCIDENT_HTTP__PORT": str(port),
            "INCIDENT_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "INCIDENT_KAFKA__REPORTS_TOPIC": self.reports_topic,
            "INCIDENT_KAFKA__DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "INCIDENT_KAFKA__GROUP_ID": f"ingest-{self.suffix}",
            "INCIDENT_KAFKA__PARTITIONS": "3",
            "INCIDENT_KAFKA__SESSION_TIMEOUT_MS": "1000",
            "INCIDENT_KAFKA__HEARTBEAT_INTERVAL_MS": "200",
            "INCIDENT_NOTIFY__JOBS_TOPIC": f"jobs-{self.suffix}",
            "INCIDENT_NOTIFY__GROUP_ID": f"notify-{self.suffix}",
            "INCIDENT_LIVE__TOPIC": f"live-{self.suffix}",
            "INCIDENT_NOTIFY__QUIET_HOURS": "",
            "INCIDENT_PLAYBOOKS__ENABLED": "false",
            "INCIDENT_LOG__LEVEL": "WARNING",
            # Where a carrier calls back ([carrier] mode = "twilio" requires it).
            "INCIDENT_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            **overrides,
        }
        service = Service(env, port, tokens)
        self.services.append(service)
        return service

    def store(self) -> Store:
        return open_store(StoreSettings(url=self.store_url, pool_size=4), SystemClock())


def report(rid: str, n: int) -> bytes:
    """A valid report far from the others in time and space, so each stays its own."""
    return orjson.dumps(
        {
            "report_id": rid, "kind": "low_pressure", "utility": "water", "source": "scada",
            "observed_at": f"2026-11-22T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
            "location": {"lon": -85.61 + (n % 100) * 0.001, "lat": 38.04}, "severity": "low",
            "summary": f"pressure low at station {n}",
        }
    )  # fmt: skip


@dataclass(frozen=True)
class DeadLetterCopy:
    original: tuple[int, int]
    code: str
    value: bytes | None
    headers: dict[str, str]


async def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetterCopy]:
    """Every copy on the dead-letter topic (all of them: duplicates are counted by the caller)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[DeadLetterCopy] = []
        async with asyncio.timeout(20):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    for m in msgs:
                        headers = {k: v.decode(errors="replace") for k, v in m.headers or ()}
                        original = (int(headers["original.partition"]), int(headers["original.offset"]))
                        found.append(DeadLetterCopy(original, headers["error.code"], m.value, headers))
        return found
    finally:
        await consumer.stop()


# --- a fan-out to kill: its own households, sent through the carrier process ---------------

HOUSEHOLDS = 400
KILLS = 5  # times a fan-out is killed
RATE = 60  # SMS a second: the fan-out lasts several seconds, so every kill lands inside it
EVERYWHERE = {
    "type": "Polygon",
    "coordinates": [[[-86.0, 37.8], [-85.2, 37.8], [-85.2, 38.3], [-86.0, 38.3], [-86.0, 37.8]]],
}


async def sending_service(
    faults: Faults, carrier: Carrier, tmp: Path, households: int = HOUSEHOLDS, rate: float = RATE
) -> tuple[Service, set[str]]:
    path, numbers = await asyncio.to_thread(households_file, tmp / "households.csv", households)
    service = await faults.service(
        INCIDENT_AREA__HOUSEHOLDS=str(path),
        INCIDENT_CARRIER__MODE="twilio",
        INCIDENT_TWILIO__API_BASE_URL=carrier.url,
        INCIDENT_TWILIO__ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
        INCIDENT_TWILIO__AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
        INCIDENT_TWILIO__FROM_NUMBER="+15025550000",
        INCIDENT_TWILIO__MESSAGES_PER_SECOND=str(rate),
        # Lost callbacks are looked up at the carrier after this long (Twilio never resends them).
        INCIDENT_NOTIFY__FINALITY_AFTER_S="3",
        INCIDENT_NOTIFY__REQUEUE_S="3",
    )
    return service, numbers


async def declare_and_approve(service: Service) -> tuple[str, int]:
    status, incident = await service.call(
        "POST", "/api/incidents",
        {"kind": "main_break", "utility": "water", "title": "Main break", "severity": "high", "area": EVERYWHERE},
    )  # fmt: skip
    assert status == 201, incident
    iid = incident["id"]
    status, planned = await service.call(
        "POST", f"/api/incidents/{iid}/notices",
        {"template": "main_break", "channels": ["sms"], "facts": {"area": "the whole town"}},
    )  # fmt: skip
    assert status in (200, 201), planned
    nid = planned["notice"]["notice_id"]
    status, body = await service.call("POST", f"/api/incidents/{iid}/notices/{nid}/approve")
    assert status in (200, 201), body
    return iid, planned["notice"]["counts"]["by_channel"]["sms"]


def unfinished(counts: dict[str, Any]) -> dict[str, int]:
    final = {"delivered", "undelivered", "failed"}
    return {state: n for state, n in counts.get("sms", {}).items() if state not in final and n}


# --- `incident serve` as a user starts it ----------------------------------------------------


class Server:
    """``incident serve`` in a child process, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen([*INCIDENT, "serve"], env=env, stderr=out, stdout=subprocess.DEVNULL)
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        for _ in range(300):
            if m := re.search(r"listening on (http://\S+)/", self.log.read_text()):
                return m[1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise AssertionError(f"the service did not start:\n{self.log.read_text()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        return code, self.log.read_text()

    def request(
        self, method: str, path: str, token: str | None = None, body: object = None
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        data = json.dumps(body).encode() if body is not None else None
        try:
            with urllib.request.urlopen(req, data=data, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, json.loads(err.read())
