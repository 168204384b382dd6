"""Idempotency-key records in both stores: claimed once, answered once, expired after their time."""

from __future__ import annotations

import asyncio

from incident.store import Store
from incident.store.ports import IdempotencyChange, IdempotencyRecord

T0 = "2026-11-22T08:00:00.000000+00:00"
T1 = "2026-11-22T08:01:00.000000+00:00"
T2 = "2026-11-23T08:00:00.000000+00:00"
T3 = "2026-11-23T08:01:00.000000+00:00"
SCOPE = "alice POST /api/incidents"


def record(key: str = "k1", sha: str = "a" * 64, scope: str = SCOPE, at: str = T0) -> IdempotencyRecord:
    return IdempotencyRecord(scope=scope, key=key, body_sha256=sha, created_at=at, updated_at=at, guard="g0")


async def test_a_key_is_claimed_once_and_keeps_its_first_answer(store: Store) -> None:
    assert await store.claim_idempotency_key(record(), T0) is None  # new: ours
    again = await store.claim_idempotency_key(record(sha="b" * 64, at=T1), T0)
    assert again is not None
    assert (again.state, again.body_sha256, again.guard) == ("pending", "a" * 64, "g0")
    done = IdempotencyChange(state="done", updated_at=T1, status=201, response='{"id":"INC-1"}')
    assert await store.update_idempotency_key(SCOPE, "k1", T0, done)
    assert not await store.update_idempotency_key(SCOPE, "k1", T0, done)  # changed meanwhile
    found = await store.claim_idempotency_key(record(at=T1), T0)
    assert found is not None
    assert (found.state, found.status, found.response, found.created_at, found.updated_at) == (
        "done", 201, '{"id":"INC-1"}', T0, T1,
    )  # fmt: skip
    assert found.guard == "g0"  # a change without a guard keeps the one recorded


async def test_the_same_key_of_another_caller_or_route_is_another_key(store: Store) -> None:
    assert await store.claim_idempotency_key(record(), T0) is None
    assert await store.claim_idempotency_key(record(scope="bob POST /api/incidents"), T0) is None
    assert await store.claim_idempotency_key(record(scope="alice POST /api/incidents/X/notes"), T0) is None
    assert await store.get_idempotency_key("carol POST /api/incidents", "k1") is None


async def test_concurrent_claims_of_one_key_give_it_to_one(store: Store) -> None:
    results = await asyncio.gather(*(store.claim_idempotency_key(record(), T0) for _ in range(8)))
    assert sum(r is None for r in results) == 1


async def test_an_expired_record_makes_way_for_a_new_claim(store: Store) -> None:
    assert await store.claim_idempotency_key(record(), T0) is None
    # A day later the first record has expired: the same key is new again.
    assert await store.claim_idempotency_key(record(sha="b" * 64, at=T2), T1) is None
    fresh = await store.get_idempotency_key(SCOPE, "k1")
    assert fresh is not None
    assert (fresh.body_sha256, fresh.created_at) == ("b" * 64, T2)


async def test_purging_removes_only_expired_records(store: Store) -> None:
    await store.claim_idempotency_key(record("old"), T0)
    await store.claim_idempotency_key(record("new", at=T2), T0)
    assert await store.purge_idempotency_keys(T1) == 1
    assert await store.get_idempotency_key(SCOPE, "old") is None
    assert await store.get_idempotency_key(SCOPE, "new") is not None
    assert await store.purge_idempotency_keys(T3) == 1


async def test_a_counter_is_read_without_moving_it(store: Store) -> None:
    assert await store.counter_value("incident:2026") == 0
    await store.next_value("incident:2026")
    await store.next_value("incident:2026")
    assert await store.counter_value("incident:2026") == 2
    assert await store.counter_value("incident:2026") == 2
