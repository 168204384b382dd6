"""Audience counts as column operations: what :func:`~incident.notices.planner.plan_deliveries`
would count, without making a delivery (pure, vectorised).

A preview needs the counts, not the deliveries: for a million households the planner's
loop makes a million Python objects; this takes a few NumPy passes over integer columns.
The rules are the planner's, to the household: per channel, in notify order, a household
with no address is skipped, one opted out (by its record or by a STOP reply) is counted as
opted out, and of the rest the first household at each address gets the delivery (its
language and priority are counted) and later ones count as sharing it. A phone number
(``+`` and digits) is compared as its number, anything else as its text.

Each address column is turned once into integer *address keys* (:func:`address_keys`,
cached per household table): -1 for no address, the number for ``+`` and digits, and
-2 - n for the n-th distinct other text. Text columns of a million rows are slow to gather
and sort; integers are not.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from incident.households.model import Channel, Need
from incident.households.table import (
    NEED_BIT,
    PRIORITY_ORDER,
    PRIORITY_UNCONFIRMED,
    HouseholdTable,
    StrArray,
    opt_out_bits,
)
from incident.notices.planner import AudienceCounts, _address_key

__all__ = ["AddressKeys", "address_keys", "count_audience", "notify_order", "prepare_address_keys"]

#: Longest digit run parsed by NumPy into an int64 (longer ones are parsed one by one).
_MAX_DIGITS = 18
_INT64_MAX = 2**63 - 1
NO_ADDRESS = -1


def notify_order(table: HouseholdTable, positions: NDArray[np.int64]) -> NDArray[np.int64]:
    """``positions`` in the order households are notified: highest priority first, file
    order within a priority (as :func:`incident.households.iter_households`)."""
    return positions[np.argsort(table.priority_rank[positions], kind="stable")]


def _column(table: HouseholdTable, channel: Channel) -> StrArray:
    if channel is Channel.sms:
        return table.sms
    if channel is Channel.voice:
        return table.voice
    if channel is Channel.email:
        return table.email
    return table.app_token


@dataclass(frozen=True, eq=False)
class AddressKeys:
    """One channel's addresses as integers (see the module docstring)."""

    keys: NDArray[np.int64]
    #: The distinct texts that are not numbers, sorted: text key -2 - i is ``texts[i]``.
    texts: StrArray

    def keys_of(self, addresses: AbstractSet[str]) -> NDArray[np.int64]:
        """The keys of these addresses (those found): only rows with one of them can be
        equal to one, so only those rows need a look at their text."""
        out = []
        for address in addresses:
            key = _address_key(address)
            if isinstance(key, int) and 0 <= key <= _INT64_MAX:
                out.append(key)
                continue
            text = address if isinstance(key, str) else f"\x00{key}"
            at = int(np.searchsorted(self.texts, np.array([text], dtype=self.texts.dtype))[0])
            if at < len(self.texts) and self.texts[at] == text:
                out.append(-2 - at)
        return np.array(out, np.int64)


_CACHE: weakref.WeakKeyDictionary[HouseholdTable, dict[Channel, AddressKeys]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _build(column: StrArray) -> AddressKeys:
    n = len(column)
    keys = np.full(n, NO_ADDRESS, np.int64)
    has = np.strings.str_len(column) > 0
    rest = np.strings.slice(column, 1, None)
    numeric = has & np.strings.startswith(column, "+") & np.strings.isdigit(rest)
    numeric &= np.strings.str_len(rest) > 0
    at = np.flatnonzero(numeric)
    digits = rest[at]
    simple = (np.strings.str_len(digits) <= _MAX_DIGITS) & (
        np.strings.str_len(np.strings.lstrip(digits, "0123456789")) == 0
    )
    keys[at[simple]] = digits[simple].astype(np.int64)
    texts = np.flatnonzero(has & ~numeric)
    odd = at[~simple]  # long or non-ASCII digits: as the planner, a Python int
    big: list[tuple[int, str]] = []
    for row, text in zip(odd.tolist(), column[odd].tolist(), strict=True):
        key = _address_key(text)
        if isinstance(key, int) and 0 <= key <= _INT64_MAX:
            keys[row] = key
        else:  # beyond int64: a text of its own kind, equal only to the same number
            big.append((row, f"\x00{key}"))
    values = np.concatenate([column[texts], np.array([t for _, t in big], dtype=column.dtype)])
    rows = np.concatenate([texts, np.array([r for r, _ in big], np.int64)])
    uniques, inverse = np.unique(values, return_inverse=True)
    keys[rows] = -2 - inverse.astype(np.int64)
    return AddressKeys(keys, uniques)


def address_keys(table: HouseholdTable, channel: Channel) -> AddressKeys:
    """The channel's address keys of ``table``, made once per table (about 0.3 s a million)."""
    with _LOCK:
        per_table = _CACHE.setdefault(table, {})
        found = per_table.get(channel)
        if found is None:
            found = per_table[channel] = _build(_column(table, channel))
        return found


def prepare_address_keys(table: HouseholdTable) -> None:
    """Make every channel's address keys now (at load), so the first preview is as quick."""
    for channel in Channel:
        address_keys(table, channel)


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
    flags = table.flags[positions]
    for channel in channels:
        per_language = counts.by_channel_language.setdefault(channel.value, Counter())
        if n == 0:
            continue
        ak = address_keys(table, channel)
        keys = ak.keys[positions]
        has = keys != NO_ADDRESS
        if channel is Channel.voice:  # never called (see incident.notices.needs)
            deaf = has & ((table.need_bits[positions] & NEED_BIT[Need.deaf_or_hard_of_hearing]) != 0)
            if (skipped := int(deaf.sum())) > 0:
                counts.needs_skipped[channel.value] += skipped
                has &= ~deaf
        blocked = has & ((bits & opt_out_bits([channel])) != 0)
        replied = by_reply.get(channel)
        if replied:
            # Rows whose address has the key of one that replied STOP; its text decides (as
            # the planner: a reply blocks the very text it came from).
            maybe = np.flatnonzero(has & ~blocked & np.isin(keys, ak.keys_of(replied)))
            if len(maybe):
                texts = _column(table, channel)[positions[maybe]].tolist()
                blocked[maybe[[t in replied for t in texts]]] = True
        open_ = has & ~blocked
        reached |= open_
        if (opted := int(blocked.sum())) > 0:
            counts.opted_out[channel.value] += opted
        eligible = np.flatnonzero(open_)
        _, first_at = np.unique(keys[eligible], return_index=True)
        first = eligible[first_at]
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
        unconfirmed = first[(flags[first] & PRIORITY_UNCONFIRMED) != 0]
        for rank, count in enumerate(np.bincount(ranks[unconfirmed]).tolist()):
            priority = PRIORITY_ORDER[rank]
            if count and priority is not None:
                counts.unconfirmed_priority[priority.value] += count
    counts.unreachable += n - int(reached.sum())
    return counts
