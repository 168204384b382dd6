"""Durable timers in both stores: scheduled once, claimed by one, re-armed, leases that run out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from incident.store import Store
from incident.store.ports import DueTimer

T0 = "2026-11-22T08:00:00.000000+00:00"
T1 = "2026-11-22T08:01:00.000000+00:00"
T2 = "2026-11-22T08:02:00.000000+00:00"
T3 = "2026-11-22T08:03:00.000000+00:00"


def timer(timer_id: str, due_at: str, incident_id: str = "INC-2026-000001", **payload: str) -> DueTimer:
    return DueTimer(timer_id=timer_id, incident_id=incident_id, due_at=due_at, payload=payload)


async def test_a_timer_is_scheduled_once_and_fires_once(store: Store) -> None:
    await store.schedule_timers([timer("I1:repair#1:etr:1", T1, stage="repair")])
    await store.schedule_timers([timer("I1:repair#1:etr:1", T0, stage="other")])  # again: left alone
    assert await store.claim_timers(T0, "a", T3, 10) == []  # not due yet
    [claimed] = await store.claim_timers(T1, "a", T3, 10)
    assert (claimed.timer_id, claimed.payload, claimed.claimed_by) == (
        "I1:repair#1:etr:1",
        {"stage": "repair"},
        "a",
    )
    assert await store.claim_timers(T1, "b", T3, 10) == []  # held by a
    assert not await store.finish_timer(claimed.timer_id, "b", T1)
    assert await store.finish_timer(claimed.timer_id, "a", T1)
    assert await store.claim_timers(T3, "b", T3, 10) == []  # done is done, even after the lease
    await store.schedule_timers([timer("I1:repair#1:etr:1", T1)])  # scheduling a done one again: nothing
    assert await store.claim_timers(T3, "b", T3, 10) == []
    [row] = await store.list_timers("INC-2026-000001")
    assert (row.state, row.fired_at) == ("done", T1)


async def test_a_claim_whose_lease_runs_out_is_claimed_again(store: Store) -> None:
    await store.schedule_timers([timer("I1:t", T0)])
    [first] = await store.claim_timers(T0, "dead-instance", T1, 10)
    assert await store.claim_timers(T0, "b", T2, 10) == []
    [again] = await store.claim_timers(T1, "b", T2, 10)  # the lease ran out at T1
    assert again.claimed_by == "b"
    assert not await store.finish_timer(first.timer_id, "dead-instance", T1)  # too late
    assert await store.finish_timer(again.timer_id, "b", T1)


async def test_rearming_keeps_the_earlier_time_and_takes_back_a_claim(store: Store) -> None:
    await store.schedule_timers([timer("I1:wake", T2)], rearm=True)
    await store.schedule_timers([timer("I1:wake", T3)], rearm=True)  # a later wish keeps T2
    await store.schedule_timers([timer("I1:wake", T1)], rearm=True)  # an earlier one wins
    [claimed] = await store.claim_timers(T1, "a", T3, 10)
    assert claimed.due_at == T1
    # Something happened while it ran: re-armed, so the holder's finish does not close it.
    await store.schedule_timers([timer("I1:wake", T2)], rearm=True)
    assert not await store.finish_timer(claimed.timer_id, "a", T2)
    [back] = await store.claim_timers(T2, "b", T3, 10)
    assert back.due_at == T2 and await store.finish_timer(back.timer_id, "b", T2)
    # A done wake-up can be armed again for the next thing.
    await store.schedule_timers([timer("I1:wake", T3)], rearm=True)
    assert [t.timer_id for t in await store.claim_timers(T3, "a", T3, 10)] == ["I1:wake"]


async def test_cancelling_a_stage_s_timers_leaves_the_others(store: Store) -> None:
    await store.schedule_timers([
        timer("I1:repair#1:etr:1", T1), timer("I1:repair#1:remind:1", T1),
        timer("I1:repair_x#1:etr:1", T1),  # a stage whose id starts like the other: not matched by a LIKE
        timer("I1:restore#1:etr:1", T1), timer("I2:repair#1:etr:1", T1, incident_id="INC-2026-000002"),
    ])  # fmt: skip
    assert await store.cancel_timers("INC-2026-000001", "I1:repair#1:") == 2
    due = await store.claim_timers(T3, "a", T3, 10)
    assert sorted((t.incident_id[-1], t.timer_id) for t in due) == [
        ("1", "I1:repair_x#1:etr:1"), ("1", "I1:restore#1:etr:1"), ("2", "I2:repair#1:etr:1"),
    ]  # fmt: skip


async def test_due_timers_come_in_time_order_up_to_the_limit(store: Store) -> None:
    await store.schedule_timers([timer(f"I1:t{i}", t) for i, t in enumerate([T2, T0, T1])])
    lease = "2026-11-22T09:00:00.000000+00:00"
    first = await store.claim_timers(T3, "a", lease, 2)
    assert [t.due_at for t in first] == [T0, T1]
    assert [t.due_at for t in await store.claim_timers(T3, "a", lease, 2)] == [T2]


async def test_instances_claiming_at_once_each_get_other_timers(make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(3)]
    for s in stores:
        await s.open()
    try:
        await stores[0].schedule_timers([timer(f"I1:t{i:03d}", T0) for i in range(60)])
        rounds = await asyncio.gather(*(s.claim_timers(T1, f"i{n}", T3, 25) for n, s in enumerate(stores)))
        ids = [t.timer_id for claimed in rounds for t in claimed]
        assert len(ids) == len(set(ids)) == 60
    finally:
        for s in stores:
            await s.close()


async def test_one_owner_at_a_time_evaluates_an_incident(store: Store) -> None:
    iid = "INC-2026-000001"
    assert await store.lock_incident(iid, "a", T0, T2)
    assert not await store.lock_incident(iid, "b", T1, T3)  # a holds it until T2
    assert await store.lock_incident(iid, "a", T1, T3)  # a extends its own
    await store.unlock_incident(iid, "b", T1)  # not b's to give back
    assert not await store.lock_incident(iid, "b", T2, T3)
    await store.unlock_incident(iid, "a", T2)
    assert await store.lock_incident(iid, "b", T2, T3)
    assert not await store.lock_incident(iid, "a", T2, T3)
    assert await store.lock_incident(iid, "a", T3, T3)  # b's lease ran out
    assert await store.list_timers(iid) == []  # a lease is no timer
    assert await store.claim_timers(T3, "c", T3, 10) == []
