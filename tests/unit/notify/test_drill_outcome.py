"""The drill carrier's pure parts: seeded outcomes, plans, records, wire formats, config."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

import incident.carriersim.server
from incident.carriersim.outcome import StepKind, plan_call, plan_sms, uniforms
from incident.carriersim.records import MessageRecord, Records
from incident.carriersim.server import CallOutcome, DrillConfig, SmsOutcome
from incident.carriersim.wire import date_filter, gather_action, is_e164, mask, rfc2822

NUMBERS = [f"+1555{i:07d}" for i in range(4000)]
ALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


def test_public_surface_is_exactly_all() -> None:
    module = incident.carriersim.server
    assert set(module.__all__) <= set(vars(module))
    assert "create_drill_app" in module.__all__
    assert "serve_drill" in module.__all__


def test_uniforms_are_deterministic_and_independent_of_other_sends() -> None:
    assert uniforms(7, "sms", "+15550000001", 0) == uniforms(7, "sms", "+15550000001", 0)
    assert uniforms(7, "sms", "+15550000001", 0) != uniforms(8, "sms", "+15550000001", 0)
    assert uniforms(7, "sms", "+15550000001", 0) != uniforms(7, "sms", "+15550000001", 1)
    assert uniforms(7, "sms", "+15550000001", 0) != uniforms(7, "voice", "+15550000001", 0)
    assert all(0 <= u < 1 for u in uniforms(7, "sms", "+15550000001", 0))


def test_sms_shares_follow_the_configured_mix() -> None:
    mix = {
        SmsOutcome.delivered: 0.6,
        SmsOutcome.unreachable: 0.1,
        SmsOutcome.unknown: 0.1,
        SmsOutcome.landline: 0.05,
        SmsOutcome.filtered: 0.05,
        SmsOutcome.failed: 0.1,
    }
    config = DrillConfig(seed=3, sms_mix=mix)
    counts = Counter(plan_sms(config, n, 0, callback=False).outcome for n in NUMBERS)
    for outcome, share in mix.items():
        # 4000 draws: a binomial standard deviation is under 0.008 for these shares.
        assert counts[outcome] / len(NUMBERS) == pytest.approx(share, abs=0.03), outcome


def test_sms_outcomes_do_not_depend_on_send_order() -> None:
    config = DrillConfig(seed=11)
    forward = {n: plan_sms(config, n, 0, callback=False).outcome for n in NUMBERS[:500]}
    shuffled = NUMBERS[:500]
    random.Random(1).shuffle(shuffled)
    assert {n: plan_sms(config, n, 0, callback=False).outcome for n in shuffled} == forward


def test_sms_final_statuses_and_error_codes() -> None:
    expected = {
        SmsOutcome.delivered: ("delivered", None),
        SmsOutcome.unreachable: ("undelivered", 30003),
        SmsOutcome.unknown: ("undelivered", 30005),
        SmsOutcome.landline: ("undelivered", 30006),
        SmsOutcome.filtered: ("undelivered", 30007),
        SmsOutcome.failed: ("failed", 30008),
    }
    for outcome, (status, code) in expected.items():
        config = DrillConfig(sms_overrides={"+15550000001": outcome}, latency_ms=(100, 100))
        plan = plan_sms(config, "+15550000001", 0, callback=True)
        assert (plan.status, plan.error_code) == (status, code)
        posted = [step.status for step in plan.steps]
        assert posted == (["queued", status] if status == "failed" else ["queued", "sent", status])
        assert [entry[1] for entry in plan.timeline] == posted
        assert plan.latency == pytest.approx(0.1)


def test_voice_shares_and_confirm_share() -> None:
    mix = {
        CallOutcome.human: 0.5,
        CallOutcome.machine: 0.2,
        CallOutcome.no_answer: 0.2,
        CallOutcome.busy: 0.05,
        CallOutcome.failed: 0.05,
    }
    config = DrillConfig(seed=5, voice_mix=mix, confirm_share=0.6)
    counts = Counter(
        plan_call(config, n, 0, callback=False, events=frozenset(), fetch_twiml=False).outcome
        for n in NUMBERS
    )
    share = {outcome: counts[outcome] / len(NUMBERS) for outcome in CallOutcome}
    assert share[CallOutcome.confirmed] == pytest.approx(0.5 * 0.6, abs=0.03)
    assert share[CallOutcome.human] == pytest.approx(0.5 * 0.4, abs=0.03)
    assert share[CallOutcome.machine] == pytest.approx(0.2, abs=0.03)
    assert share[CallOutcome.no_answer] == pytest.approx(0.2, abs=0.03)
    assert share[CallOutcome.busy] == pytest.approx(0.05, abs=0.02)
    assert share[CallOutcome.failed] == pytest.approx(0.05, abs=0.02)


def test_call_overrides_are_exact_and_plans_post_only_asked_events_plus_the_final() -> None:
    overrides = {f"+1555000000{i}": outcome for i, outcome in enumerate(CallOutcome)}
    config = DrillConfig(call_overrides=overrides, latency_ms=(1000, 1000))
    expected_posts = {
        CallOutcome.confirmed: ["initiated", "ringing", "in-progress", "gather", "completed"],
        CallOutcome.human: ["initiated", "ringing", "in-progress", "completed"],
        CallOutcome.machine: ["initiated", "ringing", "in-progress", "completed"],
        CallOutcome.no_answer: ["initiated", "ringing", "no-answer"],
        CallOutcome.busy: ["initiated", "busy"],
        CallOutcome.failed: ["failed"],
    }
    for number, outcome in overrides.items():
        for attempt in range(3):
            plan = plan_call(config, number, attempt, callback=True, events=ALL_EVENTS, fetch_twiml=False)
            assert plan.outcome is outcome
            posted = [step.status or step.kind.value for step in plan.steps]
            assert posted == expected_posts[outcome]
            offsets = [step.offset for step in plan.steps]
            assert offsets == sorted(offsets)
        only_final = plan_call(config, number, 0, callback=True, events=frozenset(), fetch_twiml=False)
        assert [s.status for s in only_final.steps if s.kind is StepKind.status] == [
            expected_posts[outcome][-1]
        ]


def test_reorder_and_duplicate_chaos() -> None:
    config = DrillConfig(
        sms_overrides={"+15550000001": SmsOutcome.delivered}, reorder_share=1.0, duplicate_share=1.0
    )
    plan = plan_sms(config, "+15550000001", 0, callback=True)
    assert [step.status for step in plan.steps] == ["delivered", "sent", "queued", "queued"]


def test_records_are_bounded_and_page_newest_first() -> None:
    records: Records[MessageRecord] = Records(limit=5)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    for i in range(8):
        records.add(
            MessageRecord(
                sid=f"SM{i}",
                seq=records.next_seq(),
                created=now,
                created_mono=0.0,
                timeline=((0.0, "queued"),),
                to="+15550000001" if i % 2 else "+15550000002",
                from_="+15550000009",
                body="x",
                num_segments=1,
                outcome=SmsOutcome.delivered,
                error_code=None,
            )
        )
    assert [r.sid for r in records] == ["SM3", "SM4", "SM5", "SM6", "SM7"]
    first = records.page(lambda r: True, 2, None)
    assert [r.sid for r in first.items] == ["SM7", "SM6"]
    second = records.page(lambda r: True, 2, first.next_after)
    assert [r.sid for r in second.items] == ["SM5", "SM4"]
    last = records.page(lambda r: True, 2, second.next_after)
    assert ([r.sid for r in last.items], last.next_after) == (["SM3"], None)
    odd = records.page(lambda r: r.to == "+15550000001", 10, None)
    assert [r.sid for r in odd.items] == ["SM7", "SM5", "SM3"]
    assert [r.sid for r in records.page(lambda r: True, 2, None, skip=2).items] == ["SM5", "SM4"]


def test_record_status_is_read_off_the_clock() -> None:
    created = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    record = MessageRecord(
        sid="SM1",
        seq=1,
        created=created,
        created_mono=100.0,
        timeline=((0.0, "queued"), (1.0, "sent"), (2.0, "delivered")),
        to="+15550000001",
        from_="+15550000009",
        body="x",
        num_segments=1,
        outcome=SmsOutcome.delivered,
        error_code=None,
    )
    assert record.status_at(100.5) == "queued"
    assert record.date_sent(100.5) is None
    assert record.status_at(101.0) == "sent"
    assert record.status_at(105.0) == "delivered"
    assert record.date_sent(105.0) == created + timedelta(seconds=1)
    assert record.updated_at(105.0) == created + timedelta(seconds=2)


def test_gather_action_from_twiml() -> None:
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="https://svc.example/hooks/twilio/'
        'gather?n=1&amp;k=2" numDigits="1"><Say>Press 1</Say></Gather></Response>'
    )
    assert gather_action(twiml) == ("https://svc.example/hooks/twilio/gather?n=1&k=2", "POST")
    assert gather_action(
        '<Response><Gather action="/g" method="get"/></Response>', "https://a.example/t"
    ) == (
        "https://a.example/g",
        "GET",
    )
    assert gather_action("<Response><Gather/></Response>", "https://a.example/t") == (
        "https://a.example/t",
        "POST",
    )
    assert gather_action('<Response><Gather action="/relative"/></Response>') is None
    assert gather_action("<Response><Say>no gather</Say></Response>") is None
    assert gather_action("not xml <") is None


def test_wire_helpers() -> None:
    assert is_e164("+8613800138000")
    assert not is_e164("13800138000")
    assert not is_e164("+0123")
    assert not is_e164("+1555123456789012")
    assert mask("+15551234567") == "**********67"
    assert rfc2822(datetime(2015, 7, 30, 20, 12, 31, 5, tzinfo=UTC)) == "Thu, 30 Jul 2015 20:12:31 +0000"
    day = datetime(2026, 11, 22, tzinfo=UTC)
    assert date_filter("2026-11-22") == (day, day + timedelta(days=1))
    assert date_filter("2026-11-22T08:15:00Z") == (
        day + timedelta(hours=8, minutes=15),
        day + timedelta(hours=8, minutes=15, seconds=1),
    )
    with pytest.raises(ValueError, match="Invalid isoformat"):
        date_filter("yesterday")


def test_config_is_checked_and_readable_from_plain_data() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        DrillConfig(sms_mix={SmsOutcome.delivered: 0.5})
    with pytest.raises(ValueError, match="latency_ms"):
        DrillConfig(latency_ms=(10, 5))
    with pytest.raises(ValueError, match="must not exceed 1"):
        DrillConfig(http_429_share=0.7, http_5xx_share=0.7)
    config = msgspec.convert(
        {
            "seed": 9,
            "sms_mix": {"delivered": 0.9, "filtered": 0.1},
            "sms_overrides": {"+15550000001": "unreachable"},
            "opted_out": ["+15550000002"],
            "latency_ms": [0, 5],
        },
        DrillConfig,
    )
    assert config.sms_overrides == {"+15550000001": SmsOutcome.unreachable}
    assert config.opted_out == frozenset({"+15550000002"})
    with pytest.raises(msgspec.ValidationError, match="add up to 1"):
        msgspec.convert({"voice_mix": {"busy": 2.0}}, DrillConfig)
    with pytest.raises(msgspec.ValidationError, match="Invalid enum value 'lost'"):
        msgspec.convert({"sms_mix": {"lost": 1.0}}, DrillConfig)
