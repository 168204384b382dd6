"""The column count of a notice's audience (previews) equals the planner's, household for
household: random households with shared, odd and missing addresses, opt-outs and STOPs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from incident.households.model import Channel, Household, Need, Priority
from incident.households.table import HouseholdTable
from incident.notices.audience import address_keys, count_audience, notify_order
from incident.notices.planner import AudienceCounts, plan_deliveries

#: Numbers and texts that stress the planner's key: shared numbers, a leading zero, non-ASCII
#: digits equal to ASCII ones, numbers beyond 64 bits, a bare "+", texts that look like numbers.
ODD = ["", "+", "+0012", "+12", "12", "tok", "+١٢", "+" + "9" * 25, "+99999999999999999999", "+" + "9" * 18]


def _households(rng: random.Random, n: int) -> list[Household]:
    def number() -> str:
        if rng.random() < 0.5:
            return rng.choice(ODD)
        return f"+1555{rng.randint(0, n // 3):07d}"

    return [
        Household(
            f"A{i}",
            0.0,
            0.0,
            "x",
            rng.choice(["en", "zh-CN", "fr"]),
            number(),
            number(),
            rng.choice(["", "t1", "t2", f"tok{rng.randint(0, 50)}", "+12"]),
            rng.choice([None, *Priority]),
            frozenset(c for c in Channel if rng.random() < 0.1),
            email=rng.choice(
                ["", "", "a@example.org", "b@example.org", f"h{rng.randint(0, 50)}@example.org"]
            ),
            needs=frozenset(n for n in Need if rng.random() < 0.2),
            priority_confirmed=rng.random() < 0.7,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(12))
def test_the_column_count_is_the_planners_count(seed: int) -> None:
    rng = random.Random(seed)
    table = HouseholdTable.from_households(_households(rng, 1500))
    selected = np.array(sorted(rng.sample(range(len(table)), 1100)), np.int64)
    order = notify_order(table, selected)
    channels = rng.sample(list(Channel), rng.randint(1, 4))
    stopped = {
        Channel.sms: {"+12", "+0012", "tok", "+15550000001"},
        Channel.voice: {"+" + "9" * 25, "12"},
        Channel.push: {"t1", "+12", "nope"},
        Channel.email: {"a@example.org"},
    }
    planned = AudienceCounts()
    for _ in plan_deliveries(table.iter_rows(order), channels, planned, stopped=stopped):
        pass
    counted = count_audience(table, order, channels, AudienceCounts(), stopped=stopped)
    assert counted.as_dict() == planned.as_dict()
    assert counted.as_dict()["deliveries"] > 0
    if Channel.voice in channels:
        assert counted.needs_skipped["voice"] > 0
    assert sum(counted.unconfirmed_priority.values()) > 0


def test_address_keys_are_made_once_per_table_and_say_equal_for_equal_numbers() -> None:
    table = HouseholdTable.from_households(
        [Household(f"A{i}", 0.0, 0.0, "x", "en", sms, "", "", None, frozenset())
         for i, sms in enumerate(["+12", "+١٢", "", "tok", "tok", "+" + "9" * 25])]
    )  # fmt: skip
    keys = address_keys(table, Channel.sms)
    assert address_keys(table, Channel.sms) is keys
    k = keys.keys.tolist()
    assert k[0] == k[1] == 12 and k[2] == -1 and k[3] == k[4] <= -2 and k[5] <= -2 and k[5] != k[3]


def test_nobody_counts_nothing() -> None:
    table = HouseholdTable.from_households(_households(random.Random(1), 10))
    counted = count_audience(table, np.empty(0, np.int64), [Channel.sms], AudienceCounts())
    assert counted.as_dict()["households"] == 0 and counted.as_dict()["by_channel_language"] == {"sms": {}}
