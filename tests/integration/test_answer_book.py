"""Carrier answers recorded in batches: a waiter that goes away does not take the batch with
it, and stopping records what is waiting instead of dropping it."""

from __future__ import annotations

import asyncio

from incident.core.clock import ManualClock
from incident.deliveries.records import Delivery, DeliveryChange
from incident.deliveries.states import DeliveryState
from incident.notices.fanout import AnswerBook
from incident.store import Store
from incident.store.ports import PutNotice
from tests.support.rows import AT, delivery, incident, notice

S = DeliveryState


async def _sending(store: Store, n: int) -> list[str]:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    await store.add_deliveries([delivery(iid, i) for i in range(1, n + 1)])
    ids = [f"{iid}-N1:{i}" for i in range(1, n + 1)]
    await store.queue_deliveries(ids, AT)
    await store.take_deliveries(ids, AT)
    return ids


def _accepted(delivery_id: str) -> DeliveryChange:
    return DeliveryChange(delivery_id=delivery_id, expect=frozenset({S.sending}), to=S.accepted,
                          carrier_sid=f"SM-{delivery_id}")  # fmt: skip


async def test_a_cancelled_waiter_leaves_its_batch_to_the_others(store: Store, clock: ManualClock) -> None:
    ids = await _sending(store, 3)
    seen: list[Delivery] = []
    book = AnswerBook(store, clock, seen.append)
    recordings = [book.submit(_accepted(d)) for d in ids]
    batch = recordings[0][0]
    assert all(future is batch for future, _ in recordings)  # one batch, one future

    async def wait(place: int, shielded: bool) -> Delivery | None:
        return (await (asyncio.shield(batch) if shielded else batch))[place]

    patient = asyncio.create_task(wait(2, shielded=True))
    careless = asyncio.create_task(wait(0, shielded=False))  # cancelling it cancels the batch
    await asyncio.sleep(0)
    careless.cancel()
    await asyncio.gather(careless, patient, return_exceptions=True)
    # The batch is recorded all the same, and its listener told of each answer.
    async with asyncio.timeout(5):
        while len(seen) < 3:
            await asyncio.sleep(0.01)
    assert sorted(d.delivery_id for d in seen) == sorted(ids)
    got = [await store.get_delivery(d) for d in ids]
    assert [g.carrier_sid if g else None for g in got] == [f"SM-{d}" for d in ids]
    # The next answers go in a batch of their own, recorded as usual.
    more = await _sending(store, 1)
    future, place = book.submit(_accepted(more[0]))
    done = (await asyncio.shield(future))[place]
    assert done is not None and done.state is S.accepted
    await book.close()


async def test_stopping_records_the_answers_still_waiting(store: Store, clock: ManualClock) -> None:
    ids = await _sending(store, 2)
    book = AnswerBook(store, clock, lambda d: None)
    for d in ids:
        book.submit(_accepted(d))
    await book.close()  # before the batch's 10 ms are up
    got = [await store.get_delivery(d) for d in ids]
    assert [g.state if g else None for g in got] == [S.accepted, S.accepted]
