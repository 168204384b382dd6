"""The fault suite's harness: the service as a real process that a test kills with SIGKILL,
a Twilio-compatible carrier in a process of its own (so it outlives the service and counts
what it was really sent), reports produced on the session broker, and the real store read
back afterwards.

Every fault test is bounded: a fixed number of kills, deadlines on every wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from incident.carriersim.config import DrillConfig, SmsOutcome
from tests.support.env import Broker
from tests.support.processes import Carrier, Faults, carrier_process


@pytest.fixture
async def carrier() -> AsyncIterator[Carrier]:
    """Every SMS delivered, after a short random latency, with signed status callbacks."""
    config = DrillConfig(latency_ms=(20, 400), sms_mix={SmsOutcome.delivered: 1.0}, seed=7)
    async with carrier_process(config) as c:
        yield c


@pytest.fixture
async def faults(tmp_path: Path, broker: Broker, store_url: str) -> AsyncIterator[Faults]:
    f = Faults(tmp_path, broker, store_url)
    yield f
    for service in f.services:
        await service.kill()


@pytest.fixture
async def producer(broker: Broker) -> AsyncIterator[AIOKafkaProducer]:
    # Large enough for the poison messages over the dead-letter topic's own limit.
    p = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, max_request_size=4 << 20
    )
    await p.start()
    yield p
    await p.stop()
