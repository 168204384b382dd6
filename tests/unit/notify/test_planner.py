"""Notice planning: one delivery per address, priority first, opt-outs, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from incident.households.model import Channel, Household, Priority
from incident.notices.context import TemplateKey
from incident.notices.planner import AudienceCounts, QuietHours, plan_deliveries, send_after


def hh(
    aid: str,
    sms: str = "",
    voice: str = "",
    token: str = "",
    *,
    language: str = "en",
    priority: Priority | None = None,
    opt_out: frozenset[Channel] = frozenset(),
) -> Household:
    return Household(account_id=aid, lon=-85.6, lat=38.0, address="x", language=language, sms=sms, voice=voice,
                     app_token=token, priority=priority, opt_out=opt_out)  # fmt: skip


def test_one_message_per_channel_and_address_even_when_accounts_share_a_number() -> None:
    households = [
        hh("A1", sms="+15025550101", priority=Priority.medical, language="zh-CN"),
        hh("A2", sms="+15025550101"),  # same landlord number
        hh("A3", sms="+15025550103", voice="+15025550101"),  # voice to that number is another channel
    ]
    counts = AudienceCounts()
    planned = list(plan_deliveries(households, [Channel.sms, Channel.voice], counts))
    assert [(p.channel, p.address, p.account_id, p.language) for p in planned] == [
        (Channel.sms, "+15025550101", "A1", "zh-CN"),
        (Channel.sms, "+15025550103", "A3", "en"),
        (Channel.voice, "+15025550101", "A3", "en"),
    ]
    assert [p.seq for p in planned] == [1, 2, 3]
    assert counts.shared_address == {"sms": 1}
    assert counts.by_channel == {"sms": 2, "voice": 1}
    assert counts.households == 3 and counts.unreachable == 0


def test_opt_outs_from_the_file_and_from_replies_are_respected() -> None:
    households = [
        hh("A1", sms="+15025550101", voice="+15025550102", opt_out=frozenset({Channel.sms})),
        hh("A2", sms="+15025550103"),
        hh("A3"),
    ]
    counts = AudienceCounts()
    planned = list(plan_deliveries(households, [Channel.sms, Channel.voice], counts,
                                   opted_out={"A2": frozenset({Channel.sms})}))  # fmt: skip
    assert [(p.account_id, p.channel) for p in planned] == [("A1", Channel.voice)]
    assert counts.opted_out == {"sms": 2}
    assert counts.unreachable == 2  # A2 opted out of the only channel it has; A3 has none


def test_the_planner_streams_in_the_given_order() -> None:
    def endless() -> object:
        n = 0
        while True:
            n += 1
            yield hh(f"A{n}", sms=f"+1502555{n:04d}")

    counts = AudienceCounts()
    stream = plan_deliveries(endless(), [Channel.sms], counts)  # type: ignore[arg-type]
    first = [next(stream) for _ in range(3)]
    assert [p.account_id for p in first] == ["A1", "A2", "A3"]


NY = ZoneInfo("America/Kentucky/Louisville")


@pytest.mark.parametrize(
    ("local", "held_until"),
    [
        (datetime(2026, 11, 22, 22, 30, tzinfo=NY), datetime(2026, 11, 23, 7, 0, tzinfo=NY)),
        (datetime(2026, 11, 23, 3, 0, tzinfo=NY), datetime(2026, 11, 23, 7, 0, tzinfo=NY)),
        (datetime(2026, 11, 23, 7, 0, tzinfo=NY), None),
        (datetime(2026, 11, 23, 12, 0, tzinfo=NY), None),
        (datetime(2026, 11, 22, 21, 0, tzinfo=NY), datetime(2026, 11, 23, 7, 0, tzinfo=NY)),
    ],
)
def test_quiet_hours_across_midnight(local: datetime, held_until: datetime | None) -> None:
    quiet = QuietHours.parse("21:00-07:00", "America/Kentucky/Louisville")
    assert quiet is not None
    got = send_after(TemplateKey.planned_outage, local.astimezone(UTC), quiet)
    assert got == held_until
    assert send_after(TemplateKey.gas_leak, local.astimezone(UTC), quiet) is None  # emergencies never wait


def test_quiet_hours_within_a_day_and_none() -> None:
    quiet = QuietHours(time(12, 0), time(13, 0), ZoneInfo("UTC"))
    assert quiet.hold_until(datetime(2026, 1, 1, 12, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 13, 0, tzinfo=UTC
    )
    assert quiet.hold_until(datetime(2026, 1, 1, 13, 30, tzinfo=UTC)) is None
    assert QuietHours.parse("", "UTC") is None
    with pytest.raises(ValueError, match="21:00-07:00"):
        QuietHours.parse("9pm to 7am", "UTC")


def test_numbers_that_replied_stop_are_skipped() -> None:
    counts = AudienceCounts()
    planned = list(
        plan_deliveries(
            [hh("A1", sms="+15025550101", voice="+15025550101"), hh("A2", sms="+15025550102")],
            [Channel.sms, Channel.voice],
            counts,
            stopped={Channel.sms: {"+15025550101"}},
        )
    )
    assert [(p.account_id, p.channel) for p in planned] == [("A1", Channel.voice), ("A2", Channel.sms)]
    assert counts.opted_out == {"sms": 1}
