"""Notice planning: who gets a notice, on which channel, in which language, and when (pure).

Households come highest priority first (``medical``, ``critical_facility``, ``vulnerable``,
then the rest), so deliveries are planned in the order they should go out. One delivery per
(channel, address): when several accounts share a number, the first (highest priority)
account's language is used and the others are counted as covered. Opted-out channels are
skipped. A household's needs order its channels and may rule one out (voice for a deaf
household, see :mod:`incident.notices.needs`). Non-urgent notices are held during quiet
hours; emergency ones never are.

The planner streams: it holds only the set of addresses already planned, so a fan-out to a
million households does not hold a million deliveries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from incident.households.model import Channel, Household, Priority
from incident.notices.context import TemplateKey
from incident.notices.needs import channels_for_needs

#: Notices about danger or loss of service: sent at any hour.
URGENT: frozenset[TemplateKey] = frozenset(
    {
        TemplateKey.main_break,
        TemplateKey.unplanned_outage,
        TemplateKey.gas_leak,
        TemplateKey.boil_water,
        TemplateKey.do_not_drink,
        TemplateKey.do_not_use,
        TemplateKey.heat_outage,
    }
)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local times between which non-urgent notices wait (``start`` > ``end`` spans midnight)."""

    start: time
    end: time
    tz: ZoneInfo

    @classmethod
    def parse(cls, text: str, tz: str) -> QuietHours | None:
        """``"21:00-07:00"``; empty means none."""
        if not text.strip():
            return None
        first, sep, second = text.partition("-")
        if not sep:
            raise ValueError(f"quiet hours must look like 21:00-07:00, not {text!r}")
        return cls(time.fromisoformat(first.strip()), time.fromisoformat(second.strip()), ZoneInfo(tz))

    def hold_until(self, now: datetime) -> datetime | None:
        """When a non-urgent notice planned at ``now`` may go, or None to send at once."""
        local = now.astimezone(self.tz)
        t = local.time()
        inside = self.start <= t < self.end if self.start < self.end else t >= self.start or t < self.end
        if not inside:
            return None
        release = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if release <= local:
            release += timedelta(days=1)
        return release


def send_after(key: TemplateKey, now: datetime, quiet: QuietHours | None) -> datetime | None:
    if key in URGENT or quiet is None:
        return None
    return quiet.hold_until(now)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One message to send. ``address`` is a phone number or push token: personal data,
    stored for sending, never logged or used as a metric label."""

    seq: int
    channel: Channel
    address: str
    account_id: str
    language: str
    priority: Priority | None


@dataclass
class AudienceCounts:
    households: int = 0
    #: Households with no channel left (no contact, or opted out of all asked channels).
    unreachable: int = 0
    #: Deliveries per channel.
    by_channel: Counter[str] = field(default_factory=Counter)
    by_language: Counter[str] = field(default_factory=Counter)
    by_priority: Counter[str] = field(default_factory=Counter)
    #: Households skipped on a channel because they opted out of it.
    opted_out: Counter[str] = field(default_factory=Counter)
    #: Households whose address another (earlier) household already gets the notice at.
    shared_address: Counter[str] = field(default_factory=Counter)
    #: Households with an address on a channel that their needs rule out (voice, deaf).
    needs_skipped: Counter[str] = field(default_factory=Counter)
    #: Deliveries (among ``by_priority``) whose priority a resident claimed and the utility
    #: has not confirmed yet (a self-enrolled ``medical_equipment`` need), by priority.
    unconfirmed_priority: Counter[str] = field(default_factory=Counter)
    #: Deliveries per channel and language: how many get each text of the notice.
    by_channel_language: dict[str, Counter[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "households": self.households,
            "unreachable": self.unreachable,
            "deliveries": sum(self.by_channel.values()),
            "by_channel": dict(self.by_channel),
            "by_language": dict(self.by_language),
            "by_priority": dict(self.by_priority),
            "opted_out": dict(self.opted_out),
            "shared_address": dict(self.shared_address),
            "needs_skipped": dict(self.needs_skipped),
            "unconfirmed_priority": dict(self.unconfirmed_priority),
            "by_channel_language": {c: dict(n) for c, n in self.by_channel_language.items()},
        }


def _address(household: Household, channel: Channel) -> str:
    if channel is Channel.sms:
        return household.sms
    if channel is Channel.voice:
        return household.voice
    if channel is Channel.email:
        return household.email
    return household.app_token


def _address_key(address: str) -> int | str:
    digits = address[1:]
    return int(digits) if address.startswith("+") and digits.isdigit() else address


def plan_deliveries(
    households: Iterable[Household],
    channels: Sequence[Channel],
    counts: AudienceCounts,
    *,
    opted_out: Mapping[str, frozenset[Channel]] | None = None,
    stopped: Mapping[Channel, AbstractSet[str]] | None = None,
) -> Iterator[PlannedDelivery]:
    """Deliveries for ``households`` on ``channels``, in the households' order; ``counts``
    is filled in as they stream. ``opted_out`` adds opt-outs by account id; ``stopped``
    the addresses that opted out by reply (a STOP to our number), per channel."""
    extra = opted_out or {}
    by_reply = stopped or {}
    # Per channel, the addresses already planned. A phone number is kept as its digits (an
    # int): for a million households the set is a third of the size of one of strings.
    seen: dict[Channel, set[int | str]] = {c: set() for c in channels}
    per_language = {c: counts.by_channel_language.setdefault(c.value, Counter()) for c in channels}
    seq = 0
    for household in households:
        counts.households += 1
        blocked = household.opt_out | extra.get(household.account_id, frozenset())
        reached = False
        order: Sequence[Channel] = channels
        if household.needs:
            order = channels_for_needs(household.needs, channels)
            for left_out in channels:
                if left_out not in order and _address(household, left_out):
                    counts.needs_skipped[left_out.value] += 1
        for channel in order:
            address = _address(household, channel)
            if not address:
                continue
            if channel in blocked or address in by_reply.get(channel, ()):
                counts.opted_out[channel.value] += 1
                continue
            reached = True
            key = _address_key(address)
            if key in seen[channel]:
                counts.shared_address[channel.value] += 1
                continue
            seen[channel].add(key)
            seq += 1
            counts.by_channel[channel.value] += 1
            counts.by_language[household.language] += 1
            per_language[channel][household.language] += 1
            counts.by_priority[household.priority.value if household.priority else "none"] += 1
            if household.priority is not None and not household.priority_confirmed:
                counts.unconfirmed_priority[household.priority.value] += 1
            yield PlannedDelivery(
                seq, channel, address, household.account_id, household.language, household.priority
            )
        if not reached:
            counts.unreachable += 1
