"""Replayed and reordered carrier callbacks (both stores).

What this proves: a carrier that posts every status callback twice and half of them out of
order leaves each delivery with one final status and each household sent to once; an
inbound SMS posted again with the same MessageSid (a carrier retry, or an attacker replaying
a signed request) adds no second reply to the timeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]

from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DrillConfig, SmsOutcome
from tests.support.processes import (
    Carrier,
    Faults,
    Service,
    carrier_process,
    declare_and_approve,
    sending_service,
    unfinished,
)
from tests.support.wait import wait_until


@pytest.fixture
async def noisy_carrier() -> AsyncIterator[Carrier]:
    config = DrillConfig(
        latency_ms=(5, 200), sms_mix={SmsOutcome.delivered: 0.8, SmsOutcome.unreachable: 0.2},
        duplicate_share=1.0, reorder_share=0.5, seed=3,
    )  # fmt: skip
    async with carrier_process(config) as c:
        yield c


async def post_inbound(service: Service, sid: str, sender: str, body: str) -> int:
    url = f"{service.url}/hooks/twilio/inbound"
    form = {"MessageSid": sid, "AccountSid": DEFAULT_ACCOUNT_SID, "From": sender, "To": "+15025550000",
            "Body": body, "NumMedia": "0"}  # fmt: skip
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, form)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as resp,
    ):
        await resp.read()
        return resp.status


async def test_replayed_and_reordered_callbacks_change_nothing(
    faults: Faults, noisy_carrier: Carrier, tmp_path: Path
) -> None:
    service, numbers = await sending_service(faults, noisy_carrier, tmp_path)
    # SMS only: an undelivered SMS would otherwise fall back to a call.
    service.env["INCIDENT_NOTIFY__SMS_FALLBACK_TO_VOICE"] = "false"
    await service.start()
    iid, planned = await declare_and_approve(service)

    async def all_final() -> bool:
        status, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
        return (
            status == 200
            and not unfinished(body["counts"])
            and sum(body["counts"]["sms"].values()) == planned
        )

    await wait_until(all_final, "every delivery final", limit=60)
    sent = await noisy_carrier.count_by_number()
    assert set(sent) == numbers and max(sent.values()) == 1
    _, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
    counts = body["counts"]["sms"]
    assert set(counts) <= {"delivered", "undelivered"} and sum(counts.values()) == planned
    assert counts.get("undelivered", 0) > 0  # the mix did produce both outcomes

    someone = sorted(numbers)[0]
    for _ in range(3):
        assert (
            await post_inbound(service, "SM" + "ab" * 16, someone, "No water at my house since noon") == 200
        )
    _, timeline = await service.call("GET", f"/api/incidents/{iid}/timeline")
    replies = Counter(e["type"] for e in timeline["events"])
    assert replies["household_reply"] == 1
    assert timeline["integrity"]["ok"] is True
    assert await service.stop() == 0, service.log_tail()
