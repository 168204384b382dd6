"""Fan-out under SIGKILL (both stores), through a Twilio-compatible carrier in its own process.

What this proves: a notice to several hundred households, approved once, while the service is
killed with SIGKILL five times mid-fan-out and started again each time, reaches every
household's number exactly once at the carrier (none twice, none left out), and every
delivery ends in a final status in the store, although the carrier's status callbacks for
some of them came while the service was down (carriers do not send them again).
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.support.processes import KILLS, Carrier, Faults, declare_and_approve, sending_service, unfinished
from tests.support.wait import wait_until


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

        await wait_until(progressed, f"sends before kill {kill + 1}", limit=60)
        await service.kill()
        await service.start()

    async def everyone_reached() -> bool:
        return len(await carrier.messages()) >= len(numbers)

    await wait_until(everyone_reached, f"all {len(numbers)} households sent to after {KILLS} kills", limit=90)

    async def all_final() -> bool:
        status, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
        assert status == 200, body
        return not unfinished(body["counts"])

    await wait_until(all_final, "every delivery final (lost callbacks looked up at the carrier)", limit=60)
    sent = await carrier.count_by_number()
    assert set(sent) == numbers  # none left out
    assert [n for n, c in sent.items() if c > 1] == []  # none twice
    _, body = await service.call("GET", f"/api/incidents/{iid}/deliveries?limit=1")
    assert body["counts"]["sms"] == {"delivered": len(numbers)}, body["counts"]
    assert await service.stop() == 0, service.log_tail()
    assert service.starts == KILLS + 1
