"""Needs in planning: a deaf household is never called and gets text first; a blind one is
called first; the planner plans each household's deliveries in that order."""

from __future__ import annotations

import pytest

from incident.households.model import Channel, Household, Need
from incident.notices.needs import channels_for_needs
from incident.notices.planner import AudienceCounts, plan_deliveries

C = Channel
DEAF = Need.deaf_or_hard_of_hearing
BLIND = Need.blind_or_low_vision


@pytest.mark.parametrize(
    ("needs", "channels", "expected"),
    [
        (set(), [C.voice, C.sms, C.email], (C.voice, C.sms, C.email)),
        ({DEAF}, [C.voice, C.sms, C.email], (C.sms, C.email)),
        ({DEAF}, [C.voice], ()),
        ({BLIND}, [C.sms, C.email, C.voice], (C.voice, C.sms, C.email)),
        ({BLIND}, [C.sms, C.push], (C.sms, C.push)),
        ({DEAF, BLIND}, [C.sms, C.voice], (C.sms,)),  # deaf-blind: read, never heard
        ({Need.medical_equipment}, [C.sms, C.voice], (C.sms, C.voice)),
    ],
)
def test_channel_order_by_needs(
    needs: set[Need], channels: list[Channel], expected: tuple[Channel, ...]
) -> None:
    assert channels_for_needs(frozenset(needs), channels) == expected


def home(account: str, *needs: Need) -> Household:
    n = account[-1]
    return Household(
        account, 0.0, 0.0, "x", "en", f"+1555000000{n}", f"+1555000001{n}", "", None, frozenset(),
        email=f"{account}@example.org", needs=frozenset(needs),
    )  # fmt: skip


def test_the_planner_follows_each_households_needs() -> None:
    counts = AudienceCounts()
    channels = [C.sms, C.email, C.voice]
    planned = list(plan_deliveries([home("A1"), home("A2", DEAF), home("A3", BLIND)], channels, counts))
    by_account: dict[str, list[Channel]] = {}
    for d in planned:
        by_account.setdefault(d.account_id, []).append(d.channel)
    assert by_account == {
        "A1": [C.sms, C.email, C.voice],
        "A2": [C.sms, C.email],
        "A3": [C.voice, C.sms, C.email],
    }
    assert [d.seq for d in planned] == list(range(1, 9))  # sent in this order
    assert counts.needs_skipped == {"voice": 1} and counts.by_channel["voice"] == 2
    assert counts.as_dict()["needs_skipped"] == {"voice": 1}


def test_a_deaf_household_reachable_only_by_voice_is_unreachable() -> None:
    counts = AudienceCounts()
    only_voice = Household(
        "A1", 0.0, 0.0, "x", "en", "", "+15550000011", "", None, frozenset(), needs=frozenset({DEAF})
    )
    assert list(plan_deliveries([only_voice], [C.sms, C.voice], counts)) == []
    assert counts.unreachable == 1 and counts.needs_skipped == {"voice": 1}


def test_an_undelivered_sms_to_a_deaf_household_does_not_become_a_call() -> None:
    from incident.api.webhooks import HookOptions, voice_fallback
    from incident.deliveries.records import Delivery
    from incident.deliveries.states import DeliveryState

    sms = Delivery(
        delivery_id="N1:1", notice_id="N1", incident_id="I1", seq=1, channel="sms", address="+15550000001",
        account_id="A1", language="en", priority_rank=3, state=DeliveryState.undelivered, error_code="30003",
    )  # fmt: skip
    hearing = home("A1")
    assert voice_fallback(sms, hearing, HookOptions(), "2026-01-01T00:00:00+00:00") is not None
    deaf = home("A1", DEAF)
    assert voice_fallback(sms, deaf, HookOptions(), "2026-01-01T00:00:00+00:00") is None
