"""What happens to one message or call: pure, deterministic draws and the resulting plan.

Every draw comes from a BLAKE2b hash of (seed, channel, number, attempt), where ``attempt``
counts the sends to that number on that channel. So the same seed and the same sends give the
same outcomes whatever order concurrent sends arrive in, and a retry to the same number is a
new draw. A plan is the status timeline (what the REST API shows as time passes) and the
callback steps (what is posted, and when), both as offsets in seconds from the create.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from incident.carriersim.config import CallOutcome, DrillConfig, SmsOutcome, call_final_status, sms_final

__all__ = [
    "CallPlan",
    "SmsPlan",
    "Step",
    "StepKind",
    "Timeline",
    "pick",
    "plan_call",
    "plan_sms",
    "uniforms",
]

E = TypeVar("E", SmsOutcome, CallOutcome)

#: (offset in seconds from the create, status reached then), in time order.
Timeline = tuple[tuple[float, str], ...]

_SCALE: Final = 2.0**-53

#: Call status callback events (``StatusCallbackEvent``) and the CallStatus each posts.
CALL_EVENTS: Final = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}


class StepKind(StrEnum):
    #: a status callback to StatusCallback
    status = "status"
    #: fetch the call's TwiML from its Url (Twilio does this when the call is answered)
    twiml = "twiml"
    #: the caller pressed 1: post Digits to the Gather action
    gather = "gather"


@dataclass(frozen=True, slots=True)
class Step:
    offset: float
    kind: StepKind
    status: str = ""


@dataclass(frozen=True, slots=True)
class SmsPlan:
    outcome: SmsOutcome
    status: str
    error_code: int | None
    latency: float
    timeline: Timeline
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class CallPlan:
    outcome: CallOutcome
    status: str
    latency: float
    duration_s: int
    timeline: Timeline
    steps: tuple[Step, ...]


def uniforms(seed: int, channel: str, number: str, attempt: int) -> tuple[float, ...]:
    """Eight independent uniforms in [0, 1) for one send."""
    digest = hashlib.blake2b(
        f"{seed}\x1f{channel}\x1f{number}\x1f{attempt}".encode(), digest_size=64
    ).digest()
    return tuple((int.from_bytes(digest[i : i + 8], "big") >> 11) * _SCALE for i in range(0, 64, 8))


def pick(mix: Mapping[E, float], order: Sequence[E], u: float) -> E:
    """The outcome whose cumulative share first exceeds ``u`` (in the enum's own order, so
    the order of keys in a config file does not matter)."""
    total = 0.0
    last = None
    for outcome in order:
        share = mix.get(outcome, 0.0)
        if share <= 0:
            continue
        total += share
        last = outcome
        if u < total:
            return outcome
    assert last is not None, "a mix has at least one positive share"
    return last


def _latency(config: DrillConfig, u: float) -> float:
    low, high = config.latency_ms
    return (low + (high - low) * u) / 1000.0


def _chaos(steps: list[Step], reorder: bool, duplicate: bool) -> tuple[Step, ...]:
    """Reverse the order of the status callbacks (same times), and/or post the last one twice."""
    status_at = [i for i, step in enumerate(steps) if step.kind is StepKind.status]
    if reorder and len(status_at) > 1:
        statuses = [steps[i].status for i in status_at]
        for i, status in zip(status_at, reversed(statuses), strict=True):
            steps[i] = Step(steps[i].offset, StepKind.status, status)
    if duplicate and status_at:
        steps.append(steps[status_at[-1]])
        steps.sort(key=lambda step: step.offset)
    return tuple(steps)


def plan_sms(config: DrillConfig, to: str, attempt: int, *, callback: bool) -> SmsPlan:
    u = uniforms(config.seed, "sms", to, attempt)
    outcome = config.sms_overrides.get(to) or pick(config.sms_mix, list(SmsOutcome), u[0])
    status, error_code = sms_final(outcome)
    latency = _latency(config, u[1])
    timeline: Timeline
    if status == "failed":
        timeline = ((0.0, "queued"), (latency, status))
    else:
        timeline = ((0.0, "queued"), (latency / 2, "sent"), (latency, status))
    steps: tuple[Step, ...] = ()
    if callback:
        # The "queued" callback waits a little, so that it rarely overtakes the create response.
        posted = [Step(max(offset, latency / 10), StepKind.status, s) for offset, s in timeline]
        steps = _chaos(posted, u[2] < config.reorder_share, u[3] < config.duplicate_share)
    return SmsPlan(outcome, status, error_code, latency, timeline, steps)


def plan_call(
    config: DrillConfig,
    to: str,
    attempt: int,
    *,
    callback: bool,
    events: frozenset[str],
    fetch_twiml: bool,
) -> CallPlan:
    """``events``: the StatusCallbackEvent values asked for; the final status is always posted.
    ``fetch_twiml``: the call names a Url (not inline Twiml), fetched when it is answered."""
    u = uniforms(config.seed, "voice", to, attempt)
    outcome = config.call_overrides.get(to)
    if outcome is None:
        outcome = pick(config.voice_mix, list(CallOutcome), u[0])
        if outcome is CallOutcome.human and u[2] < config.confirm_share:
            outcome = CallOutcome.confirmed
    final = call_final_status(outcome)
    latency = _latency(config, u[1])
    answered = final == "completed"
    low, high = config.call_duration_s
    duration = round(low + (high - low) * u[3]) if answered else 0

    timeline: list[tuple[float, str]] = [(0.0, "queued")]
    if outcome is not CallOutcome.failed:
        timeline.append((latency * 0.1, "initiated"))
    if outcome is not CallOutcome.failed and outcome is not CallOutcome.busy:
        timeline.append((latency * 0.3, "ringing"))
    if answered:
        timeline.append((latency * 0.5, "in-progress"))
    timeline.append((latency, final))

    steps: list[Step] = []
    wanted = {CALL_EVENTS[event] for event in events if event in CALL_EVENTS}
    if callback:
        steps = [Step(offset, StepKind.status, s) for offset, s in timeline[1:] if s in wanted]
        steps.append(Step(latency, StepKind.status, final))
    if answered and fetch_twiml:
        steps.append(Step(latency * 0.5, StepKind.twiml))
    if outcome is CallOutcome.confirmed:
        steps.append(Step(latency * 0.75, StepKind.gather))
    steps.sort(key=lambda step: step.offset)
    planned = _chaos(steps, u[4] < config.reorder_share, u[5] < config.duplicate_share)
    return CallPlan(outcome, final, latency, duration, tuple(timeline), planned)
