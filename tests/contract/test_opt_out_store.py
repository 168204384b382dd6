"""Opt-outs by reply and the latest delivery to an address, in both stores."""

from __future__ import annotations

from incident.deliveries.records import Delivery, Notice
from incident.deliveries.states import DeliveryState
from incident.store import Store
from incident.store.ports import PutNotice
from tests.support.rows import delivery, incident, notice

S = DeliveryState
T1 = "2026-11-22T08:00:00.000000+00:00"
T2 = "2026-11-22T09:00:00.000000+00:00"
T3 = "2026-11-22T10:00:00.000000+00:00"
A = "+15025550101"
B = "+15025550102"


async def test_opt_out_and_back_in_by_reply(store: Store) -> None:
    assert await store.opt_out_state(A, "sms") is None
    assert await store.opted_out_addresses("sms") == set()

    await store.set_opt_out(A, "sms", True, T1)
    await store.set_opt_out(B, "sms", True, T1)
    await store.set_opt_out(B, "voice", True, T1)
    assert await store.opted_out_addresses("sms") == {A, B}
    assert await store.opted_out_addresses("voice") == {B}
    assert await store.opt_out_state(A, "sms") is True
    assert await store.opt_out_state(A, "voice") is None

    await store.set_opt_out(A, "sms", False, T2)
    assert await store.opt_out_state(A, "sms") is False
    assert await store.opted_out_addresses("sms") == {B}


async def test_an_older_reply_never_undoes_a_newer_one(store: Store) -> None:
    await store.set_opt_out(A, "sms", False, T2)
    await store.set_opt_out(A, "sms", True, T1)  # processed late: older than the START
    assert await store.opt_out_state(A, "sms") is False
    await store.set_opt_out(A, "sms", True, T3)
    assert await store.opt_out_state(A, "sms") is True
    await store.set_opt_out(A, "sms", True, T3)  # the same reply again changes nothing
    assert await store.opted_out_addresses("sms") == {A}


def _at(n: Notice, created_at: str, suffix: str) -> Notice:
    fields = {f: getattr(n, f) for f in n.__struct_fields__}
    return Notice(**{**fields, "notice_id": n.notice_id + suffix, "created_at": created_at})


def _for(d: Delivery, n: Notice, seq: int, state: DeliveryState = S.planned) -> Delivery:
    fields = {f: getattr(d, f) for f in d.__struct_fields__}
    return Delivery(**{**fields, "delivery_id": f"{n.notice_id}:{seq}", "notice_id": n.notice_id,
                       "incident_id": n.incident_id, "seq": seq, "state": state})  # fmt: skip


async def test_latest_delivery_to_an_address_is_that_of_the_newest_notice(store: Store) -> None:
    assert await store.latest_delivery_to(A) is None
    first_incident = await incident(store)
    second_incident = await incident(store)
    old = _at(notice(first_incident), T1, "")
    new = _at(notice(second_incident), T2, "")
    draft = _at(notice(second_incident, status="planning"), T3, "-draft")
    await store.apply_plan([PutNotice(old), PutNotice(new), PutNotice(draft)])
    template = delivery(first_incident, 1, address=A)
    await store.add_deliveries([
        _for(template, old, 20),  # a higher seq, but an older notice
        # The newest notice sent to A.
        _for(template, new, 7),
        _for(delivery(second_incident, 8, address=B), new, 8),
        # A draft of an unapproved notice was never sent: a reply cannot be about it.
        _for(template, draft, 21, S.draft),
    ])  # fmt: skip
    latest = await store.latest_delivery_to(A)
    assert latest is not None
    assert (latest.notice_id, latest.incident_id, latest.seq) == (new.notice_id, second_incident, 7)
    other = await store.latest_delivery_to(B)
    assert other is not None and other.seq == 8
    assert await store.latest_delivery_to("+15025550199") is None
