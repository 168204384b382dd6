"""Fan-out under SIGKILL (both stores), through a Twilio-compatible carrier in its own process.

What this proves: a notice to several hundred households, approved once, while the service is
killed with SIGKILL five times mid-fan-out and started again each time, reaches every
household's number exactly once at the carrier (none twice, none left out), and every
delivery ends in a final status in the store, although the carrier's status callbacks for
some of them came while the service was down (carriers do not send them again).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.faults.conftest import Carrier, Faults, Service, households_file, wait_for

HOUSEHOLDS = 400
KILLS = 5
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


async def test_sigkill_mid_fan_out_sends_every_household_once_and_every_delivery_ends(
    faults: Faults, carrier: Carrier, tmp_path: Path
) -> None:
    service, numbers = await sending_service(faults, carrier, tmp_path)
    await service.start()
    iid, planned = await declare_and_approve(service)
    assert planned == len(numbers)

    rng = random.Random(5)
    for kill in range(KILLS):
        target = len(await carrier.messages()) + rng.randint(5, 25)

        async def progressed(target: int = target) -> bool:
            return len(await carrier.messages()) >= target

        await wait_for(progressed, f"sends before kill {kill + 1}")
        await service.kill()
        await service.start()

    async def everyone_reached() -> bool:
        return len(await carrier.messages()) >= len(numbers)

    await wait_for(everyone_reached, f"all {len(numbers)} households sent to after {KILLS} kills", limit=90)

    async def all_final() -> bool:
        status, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
        assert status == 200, body
        return not unfinished(body["counts"])

    await wait_for(all_final, "every delivery final (lost callbacks looked up at the carrier)", limit=60)
    sent = await carrier.count_by_number()
    assert set(sent) == numbers  # none left out
    assert [n for n, c in sent.items() if c > 1] == []  # none twice
    _, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
    assert body["counts"]["sms"] == {"delivered": len(numbers)}, body["counts"]
    assert await service.stop() == 0, service.log_tail()
    assert service.starts == KILLS + 1
