"""Notices and deliveries in both stores: once per address, compare-and-set, never backwards."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from incident.core import domain
from incident.deliveries.records import Delivery, DeliveryChange, Notice
from incident.deliveries.states import SENDABLE, DeliveryState
from incident.store import Store
from incident.store.ports import AppendTo, PutNotice
from tests.support.rows import AT, delivery, incident, notice

S = DeliveryState


async def test_a_notice_and_its_timeline_event_are_written_together(store: Store) -> None:
    iid = await incident(store)
    n = notice(iid)
    await store.apply_plan([
        PutNotice(n),
        AppendTo(iid, lambda s: [domain.EventDraft(type="notice_planned", actor="alice", data={"notice_id": n.notice_id})]),
    ])  # fmt: skip
    assert await store.get_notice(n.notice_id) == n
    approved = Notice(
        **{**{f: getattr(n, f) for f in n.__struct_fields__}, "status": "approved", "approved_by": "bob"}
    )
    await store.apply_plan([PutNotice(approved)])
    assert (await store.get_notice(n.notice_id)) == approved
    assert await store.list_notices(iid) == [approved]
    assert await store.get_notice("nope") is None


async def test_deliveries_are_planned_once_per_notice_channel_and_address(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    first = [delivery(iid, i) for i in range(1, 51)]
    assert await store.add_deliveries(first) == 50
    again = [
        *first[:10],
        delivery(iid, 99, address=first[0].address),
        delivery(iid, 51),
        delivery(iid, 52, "voice", first[0].address),
    ]
    assert await store.add_deliveries(again) == 2  # only seq 51 (sms) and 52 (voice) are new
    counts = await store.delivery_counts(iid)
    assert counts == {"sms": {"planned": 51}, "voice": {"planned": 1}}
    due = await store.due_deliveries(AT, 1000)
    assert [d.priority_rank for d in due] == sorted(d.priority_rank for d in due)
    page = await store.list_deliveries(iid, "", 10)
    assert len(page) == 10 and await store.get_delivery(page[0].delivery_id) == page[0]


async def test_only_one_sender_can_take_a_delivery(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    d = delivery(iid, 1)
    await store.add_deliveries([d])
    take = DeliveryChange(
        delivery_id=d.delivery_id, expect=SENDABLE, to=S.sending, count_attempt=True, detail="sender 1"
    )
    results = await asyncio.gather(*(store.change_delivery(take, AT) for _ in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].state == S.sending and winners[0].attempts == 1
    accepted = await store.change_delivery(
        DeliveryChange(
            delivery_id=d.delivery_id,
            expect=frozenset({S.sending}),
            to=S.accepted,
            carrier_sid="SM" + "a" * 32,
        ),
        AT,
    )
    assert accepted is not None and accepted.carrier_sid == "SM" + "a" * 32
    assert await store.delivery_by_sid("SM" + "a" * 32) == accepted
    assert [e[1] for e in await store.delivery_events(d.delivery_id)] == ["sending", "accepted"]
    assert await store.deliveries_in([S.accepted], 10) == [accepted]


@pytest.mark.parametrize("backwards", [S.planned, S.sending])
async def test_a_change_whose_precondition_fails_changes_nothing(
    store: Store, backwards: DeliveryState
) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    d = delivery(iid, 1)
    await store.add_deliveries([d])
    done = await store.change_delivery(
        DeliveryChange(delivery_id=d.delivery_id, expect=SENDABLE, to=S.delivered), AT
    )
    assert done is not None
    assert (
        await store.change_delivery(
            DeliveryChange(delivery_id=d.delivery_id, expect=SENDABLE, to=backwards), AT
        )
        is None
    )
    got = await store.get_delivery(d.delivery_id)
    assert got is not None and got.state == S.delivered


async def test_queueing_a_round_moves_only_what_is_still_sendable(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    ds = [delivery(iid, i) for i in range(1, 6)]
    await store.add_deliveries(ds)
    await store.change_delivery(
        DeliveryChange(delivery_id=ds[0].delivery_id, expect=SENDABLE, to=S.sending), AT
    )
    moved = await store.queue_deliveries([d.delivery_id for d in ds] + ["nope"], AT)
    assert sorted(moved) == sorted((d.delivery_id, d.account_id) for d in ds[1:])
    assert await store.queue_deliveries([d.delivery_id for d in ds], AT) == []  # a second round moves nothing
    assert [e[1] for e in await store.delivery_events(ds[1].delivery_id)] == ["queued"]


async def test_senders_take_a_batch_once(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    ds = [delivery(iid, i) for i in range(1, 6)]
    await store.add_deliveries(ds)
    await store.queue_deliveries([d.delivery_id for d in ds[:4]], AT)
    first, second = await asyncio.gather(
        store.take_deliveries([d.delivery_id for d in ds], AT),
        store.take_deliveries([d.delivery_id for d in ds], AT),
    )
    taken = first + second
    assert sorted(d.delivery_id for d in taken) == sorted(
        d.delivery_id for d in ds[:4]
    )  # each once; #5 not queued
    assert all(d.state == S.sending and d.attempts == 1 for d in taken)


async def test_due_deliveries_merge_planned_and_retries_in_priority_order(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    await store.add_deliveries([delivery(iid, i) for i in range(1, 13)])
    later = "2026-11-22T09:00:00.000000+00:00"
    # Two become retries: one due now, one only later.
    for seq, when in ((2, AT), (6, later)):
        change = DeliveryChange(delivery_id=f"{iid}-N1:{seq}", expect=frozenset({S.planned}), to=S.retry,
                                next_attempt_at=when, detail="429")  # fmt: skip
        assert await store.change_delivery(change, AT) is not None
    await store.release_deliveries(f"{iid}-N1", None)
    due = await store.due_deliveries(AT, 100)
    expected = sorted((d for d in range(1, 13) if d != 6), key=lambda s: (s % 4, s))
    assert [d.seq for d in due] == expected
    assert [d.seq for d in await store.due_deliveries(AT, 3)] == expected[:3]
    assert [d.seq for d in await store.due_deliveries(later, 100)] == sorted(
        range(1, 13), key=lambda s: (s % 4, s)
    )
    assert await store.due_deliveries(AT, 100, notice_id="other") == []


async def test_a_batch_of_changes_applies_each_that_still_holds(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    await store.add_deliveries([delivery(iid, i) for i in range(1, 5)])
    await store.queue_deliveries([f"{iid}-N1:{i}" for i in range(1, 5)], AT)
    taken = await store.take_deliveries([f"{iid}-N1:{i}" for i in (1, 2, 3)], AT)
    assert await store.count_deliveries_in([S.sending]) == 3
    assert await store.count_deliveries_in([S.queued, S.sending]) == 4

    def answer(d: Delivery, sid: str) -> DeliveryChange:
        return DeliveryChange(delivery_id=d.delivery_id, expect=frozenset({S.sending}), to=S.accepted,
                              carrier_sid=sid, detail="carrier: accepted")  # fmt: skip

    queued = DeliveryChange(
        delivery_id=f"{iid}-N1:4", expect=frozenset({S.sending}), to=S.accepted, detail="x"
    )
    results = await store.change_deliveries([answer(taken[0], "SM1"), queued, answer(taken[1], "SM2")], AT)
    assert [r.carrier_sid if r else None for r in results] == ["SM1", None, "SM2"]
    assert await store.count_deliveries_in([S.accepted]) == 2
    assert (await store.get_delivery(f"{iid}-N1:4")).state == S.queued  # type: ignore[union-attr]
    assert [e[1] for e in await store.delivery_events(taken[0].delivery_id)] == [
        "queued",
        "sending",
        "accepted",
    ]
    assert await store.change_deliveries([], AT) == []


async def test_a_batch_applies_mixed_changes_and_a_delivery_named_twice_in_order(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    await store.add_deliveries([delivery(iid, i) for i in range(1, 702)])
    ids = [f"{iid}-N1:{i}" for i in range(1, 702)]
    await store.queue_deliveries(ids, AT)
    await store.take_deliveries(ids, AT)
    sending = frozenset({S.sending})
    later = "2026-11-22T08:05:00.000000+00:00"
    changes = [
        # 600 answers of one shape, in one statement.
        *(DeliveryChange(delivery_id=d, expect=sending, to=S.accepted, carrier_sid=f"SM{n}") for n, d in enumerate(ids[:600])),
        DeliveryChange(delivery_id=ids[600], expect=sending, to=S.retry, error_code="20429", next_attempt_at=later),
        DeliveryChange(delivery_id=ids[601], expect=sending, to=S.failed, error_code="21211"),
        # The same delivery twice: the second change sees the first one's state.
        DeliveryChange(delivery_id=ids[0], expect=frozenset({S.accepted}), to=S.delivered),
        # Sent again (counted) from retry: applies only because the retry above came first.
        DeliveryChange(delivery_id=ids[600], expect=frozenset({S.retry}), to=S.sending, count_attempt=True),
        # A change whose precondition fails within the batch.
        DeliveryChange(delivery_id=ids[601], expect=sending, to=S.accepted, carrier_sid="SMx"),
    ]  # fmt: skip
    results = await store.change_deliveries(changes, AT)
    assert [r.carrier_sid if r else None for r in results[:600]] == [f"SM{n}" for n in range(600)]
    retried, failed, delivered, again, refused = results[600:]
    assert retried is not None and retried.state == S.retry and retried.next_attempt_at == later
    assert failed is not None and failed.state == S.failed and failed.error_code == "21211"
    assert delivered is not None and delivered.state == S.delivered and delivered.carrier_sid == "SM0"
    assert again is not None and again.state == S.sending and again.attempts == 2
    assert again.error_code == "20429"  # columns a change does not name are kept
    assert refused is None
    assert [e[1] for e in await store.delivery_events(ids[0])] == [
        "queued",
        "sending",
        "accepted",
        "delivered",
    ]
    assert [e[1] for e in await store.delivery_events(ids[600])] == ["queued", "sending", "retry", "sending"]
    assert await store.count_deliveries_in([S.accepted]) == 599
    back = DeliveryChange(delivery_id=ids[600], expect=sending, to=S.retry)  # retry without a time: now
    (cleared,) = await store.change_deliveries([back], AT)
    assert cleared is not None and cleared.next_attempt_at is None


# --- the fan-out under crashes: claims, leases, overdue final statuses, inbound replays ------------

LATER = "2026-11-22T08:00:10.000000+00:00"
MUCH_LATER = "2026-11-22T08:05:00.000000+00:00"


async def test_a_claim_is_started_once_and_only_a_gone_senders_unstarted_claims_are_released(
    store: Store,
) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    ds = [delivery(iid, i) for i in range(1, 7)]
    await store.add_deliveries(ds)
    ids = [d.delivery_id for d in ds]
    await store.queue_deliveries(ids, AT)
    first, second = await asyncio.gather(
        store.claim_deliveries(ids[:3], "dead", AT), store.claim_deliveries(ids[:3], "other", AT)
    )
    assert sorted(d.delivery_id for d in first + second) == ids[:3]  # each claimed once
    assert all(d.state == S.claimed and d.attempts == 0 for d in first + second)  # no try yet
    await store.queue_deliveries(ids, AT)  # claimed ones are not published again
    assert {d.delivery_id for d in await store.claim_deliveries(ids[3:], "live", AT)} == set(ids[3:])
    # A carrier call starts: counted, once, and only for what is still claimed.
    assert await store.start_deliveries([ids[0], "nope"], AT) == [ids[0]]
    assert await store.start_deliveries([ids[0]], AT) == []
    started = await store.get_delivery(ids[0])
    assert started is not None and started.state == S.sending and started.attempts == 1

    # "live" renews its lease; "dead" and "other" never did (or it ran out).
    await store.renew_sender("live", MUCH_LATER, LATER)
    assert await store.release_claims(LATER, AT, AT, LATER) == 0  # claimed within the grace: kept
    released = await store.release_claims(LATER, LATER, AT, LATER)
    assert released == 2  # the unstarted claims of the gone senders; never "live"'s, never a started one
    states = {d.delivery_id: d.state for d in await store.deliveries_by_id(ids)}
    assert states[ids[0]] == S.sending
    assert [states[i] for i in ids[1:3]] == [S.planned, S.planned]
    assert [states[i] for i in ids[3:]] == [S.claimed] * 3
    assert {d.delivery_id for d in await store.due_deliveries(LATER, 10)} == set(
        ids[1:3]
    )  # sent again at once
    assert [e[1] for e in await store.delivery_events(ids[1])] == ["queued", "claimed", "planned"]
    # The started one's sender is gone: its call is for the reconciler to look up at once;
    # a started call of a live sender is not.
    assert [d.delivery_id for d in await store.orphaned_sending(LATER, 10)] == [ids[0]]
    assert await store.start_deliveries([ids[3]], LATER) == [ids[3]]
    assert [d.delivery_id for d in await store.orphaned_sending(LATER, 10)] == [ids[0]]
    assert {d.delivery_id for d in await store.orphaned_sending(MUCH_LATER, 10)} == {ids[0], ids[3]}
    await store.release_claims(LATER, LATER, AT, LATER, owner="live")
    await store.queue_deliveries(ids[3:], LATER)  # ids[3] is sending: left alone
    await store.claim_deliveries(ids[4:], "live", LATER)
    # A stopping sender gives its own back; any claim older than the stale bound goes too.
    assert await store.release_claims(LATER, LATER, AT, LATER, owner="live") == 2
    await store.queue_deliveries(ids[4:], LATER)
    await store.claim_deliveries(ids[4:], "live", LATER)
    assert await store.release_claims(LATER, AT, MUCH_LATER, MUCH_LATER) == 2


async def test_fanout_progress_reads_the_oldest_due_and_the_last_take(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    assert await store.fanout_progress(LATER) == (None, None)
    ds = [delivery(iid, i) for i in range(1, 4)]
    ds[2] = msgspec.structs.replace(ds[2], not_before=MUCH_LATER)  # quiet hours: not due yet
    await store.add_deliveries(ds)
    retry = DeliveryChange(delivery_id=ds[1].delivery_id, expect=frozenset({S.planned}), to=S.retry,
                           next_attempt_at=LATER)  # fmt: skip
    await store.change_delivery(retry, AT)
    await store.renew_sender("a", LATER, AT)
    await store.renew_sender("b", LATER, LATER)
    await store.renew_sender("a", MUCH_LATER, None)  # a renewal without a take keeps the last take
    assert await store.fanout_progress(LATER) == (AT, LATER)
    await store.queue_deliveries([ds[0].delivery_id], LATER)
    assert (await store.fanout_progress(LATER))[0] == LATER  # the retry, due since LATER
    assert (await store.fanout_progress(AT))[0] is None  # nothing due yet at AT


async def test_deliveries_whose_final_status_is_overdue_are_found_longest_waiting_first(store: Store) -> None:
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    ds = [delivery(iid, 1), delivery(iid, 2, "voice"), delivery(iid, 3, "push", "token-3"), delivery(iid, 4)]
    await store.add_deliveries(ds)
    planned = frozenset({S.planned})
    for d, to, at in (
        (ds[0], S.sent, LATER),
        (ds[1], S.ringing, AT),
        (ds[2], S.sent, AT),
        (ds[3], S.delivered, AT),
    ):
        change = DeliveryChange(delivery_id=d.delivery_id, expect=planned, to=to, carrier_sid=f"SID{d.seq}")
        assert await store.change_delivery(change, at) is not None
    overdue = await store.awaiting_final(MUCH_LATER, 10)
    assert [d.seq for d in overdue] == [2, 1]  # push has no receipts, delivered is final
    assert [d.seq for d in await store.awaiting_final(LATER, 10)] == [2]
    assert [d.seq for d in await store.awaiting_final(MUCH_LATER, 1)] == [2]


async def test_an_inbound_message_is_recorded_once(store: Store) -> None:
    assert await store.record_inbound("SM" + "1" * 32, AT) is True
    assert await store.record_inbound("SM" + "1" * 32, LATER) is False
    await store.forget_inbound("SM" + "1" * 32)
    assert await store.record_inbound("SM" + "1" * 32, LATER) is True


async def test_a_sender_starts_only_its_own_claims(store: Store) -> None:
    """A sender whose claim was released under it (its lease lapsed in a store outage) and
    claimed by another instance meanwhile must not start it: the other instance holds it, and
    if it is started, a crash is looked up by the holder's lease."""
    iid = await incident(store)
    await store.apply_plan([PutNotice(notice(iid))])
    d = delivery(iid, 1)
    await store.add_deliveries([d])
    await store.queue_deliveries([d.delivery_id], AT)
    await store.claim_deliveries([d.delivery_id], "lapsed", AT)
    assert await store.release_claims(LATER, LATER, AT, LATER) == 1  # "lapsed" has no lease
    await store.queue_deliveries([d.delivery_id], LATER)
    assert [c.delivery_id for c in await store.claim_deliveries([d.delivery_id], "other", LATER)] == [
        d.delivery_id
    ]
    assert await store.start_deliveries([d.delivery_id], LATER, owner="lapsed") == []
    assert await store.start_deliveries([d.delivery_id], LATER, owner="other") == [d.delivery_id]
