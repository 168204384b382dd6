"""Audience counts as column operations: what :func:`~incident.notify.planner.plan_deliveries`
would count, without making a delivery (pure, vectorised).

A preview needs the counts, not the deliveries: for a million households the planner's
loop makes a million Python objects, this takes a few NumPy passes over the household
columns. The rules are the planner's, to the household: per channel, in notify order,
a household with no address is skipped, one opted out (by its record or by a STOP
reply) is counted as opted out, and of the rest the first household at each address gets
the delivery (its language and priority are counted) and later ones count as sharing it.
A phone number (``+`` and digits) is compared as its number, anything else as its text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

import numpy as np
from numpy.typing import NDArray

from incident.geo.household import Channel
from incident.geo.table import PRIORITY_ORDER, STRING, HouseholdTable, StrArray, opt_out_bits
from incident.notify.planner import AudienceCounts, _address_key

__all__ = ["count_audience", "notify_order"]

#: Longest digit run compared as an int64 (larger ones take the exact, slower path).
_MAX_DIGITS = 18


def notify_order(table: HouseholdTable, positions: NDArray[np.int64]) -> NDArray[np.int64]:
    """``positions`` in the order households are notified: highest priority first, file
    order within a priority (as :func:`incident.geo.iter_households`)."""
    return positions[np.argsort(table.priority_rank[positions], kind="stable")]


def _column(table: HouseholdTable, channel: Channel) -> StrArray:
    if channel is Channel.sms:
        return table.sms
    if channel is Channel.voice:
        return table.voice
    return table.app_token


def _first_at_address(addresses: StrArray) -> NDArray[np.int64]:
    """Positions in ``addresses`` of the first occurrence of each address key, ascending."""
    n = len(addresses)
    if n == 0:
        return np.empty(0, np.int64)
    plus = np.strings.startswith(addresses, "+")
    rest = np.strings.slice(addresses, 1, None)
    length = np.strings.str_len(rest)
    numeric = plus & (length > 0) & np.strings.isdigit(rest)
    ascii_digits = np.strings.str_len(np.strings.lstrip(rest, "0123456789")) == 0
    simple = numeric & (length <= _MAX_DIGITS) & ascii_digits
    odd = numeric & ~simple  # long or non-ASCII digits: keys as Python ints, exactly
    firsts: list[NDArray[np.int64]] = []
    texts = np.flatnonzero(~numeric)
    if len(texts):
        _, first = np.unique(addresses[texts], return_index=True)
        firsts.append(texts[first])
    numbers = np.flatnonzero(simple | odd)
    if len(numbers):
        if odd.any():
            seen: set[int | str] = set()
            keep = []
            for at, address in zip(numbers.tolist(), addresses[numbers].tolist(), strict=True):
                key = _address_key(address)
                if key not in seen:
                    seen.add(key)
                    keep.append(at)
            firsts.append(np.array(keep, np.int64))
        else:
            _, first = np.unique(rest[numbers].astype(np.int64), return_index=True)
            firsts.append(numbers[first])
    return np.sort(np.concatenate(firsts)) if firsts else np.empty(0, np.int64)


def count_audience(
    table: HouseholdTable,
    positions: NDArray[np.int64],
    channels: Sequence[Channel],
    counts: AudienceCounts,
    *,
    stopped: Mapping[Channel, AbstractSet[str]] | None = None,
) -> AudienceCounts:
    """Add to ``counts`` what planning the households at ``positions`` (in notify order,
    see :func:`notify_order`) on ``channels`` would count; ``stopped`` as the planner's."""
    n = len(positions)
    counts.households += n
    by_reply = stopped or {}
    reached = np.zeros(n, bool)
    bits = table.opt_out_bits[positions]
    languages = table.language_code[positions]
    ranks = table.priority_rank[positions]
    for channel in channels:
        per_language = counts.by_channel_language.setdefault(channel.value, Counter())
        if n == 0:
            continue
        addresses = _column(table, channel)[positions]
        has = np.strings.str_len(addresses) > 0
        blocked = has & ((bits & opt_out_bits([channel])) != 0)
        replied = by_reply.get(channel)
        if replied:
            blocked |= has & np.isin(addresses, np.array(sorted(replied), dtype=STRING))
        open_ = has & ~blocked
        reached |= open_
        if (opted := int(blocked.sum())) > 0:
            counts.opted_out[channel.value] += opted
        eligible = np.flatnonzero(open_)
        first = eligible[_first_at_address(addresses[eligible])]
        if (shared := len(eligible) - len(first)) > 0:
            counts.shared_address[channel.value] += shared
        if len(first) == 0:
            continue
        counts.by_channel[channel.value] += len(first)
        for code, count in enumerate(np.bincount(languages[first]).tolist()):
            if count:
                tag = table.languages[code]
                counts.by_language[tag] += count
                per_language[tag] += count
        for rank, count in enumerate(np.bincount(ranks[first]).tolist()):
            if count:
                priority = PRIORITY_ORDER[rank]
                counts.by_priority[priority.value if priority else "none"] += count
    counts.unreachable += n - int(reached.sum())
    return counts
