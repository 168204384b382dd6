"""Settings of the drill carrier: who it is, how messages and calls turn out, how it misbehaves.

A leaf: imports nothing of ours. ``DrillConfig`` is a frozen msgspec struct, so it can be
embedded in the service's settings and read from TOML, or built directly in tests.

Outcomes are drawn per destination number and per attempt from the seed (see
``drill_outcome``), so the same seed and the same sends give the same results whatever order
the sends arrive in. ``sms_overrides`` / ``call_overrides`` pin a number's outcome exactly.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Final

import msgspec

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "CallOutcome",
    "DrillConfig",
    "SmsOutcome",
    "call_final_status",
    "sms_final",
]

#: A syntactically valid, obviously fake account for exercises ("AC" + 32 hex digits).
DEFAULT_ACCOUNT_SID: Final = "AC" + "d1" * 16
DEFAULT_AUTH_TOKEN: Final = "drill-auth-token"  # noqa: S105 - a simulator's well-known default


class SmsOutcome(StrEnum):
    """How an accepted SMS ends; each maps to Twilio's final status and error code."""

    delivered = "delivered"
    #: undelivered, 30003 Unreachable destination handset
    unreachable = "unreachable"
    #: undelivered, 30005 Unknown destination handset
    unknown = "unknown"
    #: undelivered, 30006 Landline or unreachable carrier
    landline = "landline"
    #: undelivered, 30007 Message filtered (carrier filtering)
    filtered = "filtered"
    #: failed (never sent), 30008 Unknown error
    failed = "failed"


_SMS_FINAL: Final[dict[SmsOutcome, tuple[str, int | None]]] = {
    SmsOutcome.delivered: ("delivered", None),
    SmsOutcome.unreachable: ("undelivered", 30003),
    SmsOutcome.unknown: ("undelivered", 30005),
    SmsOutcome.landline: ("undelivered", 30006),
    SmsOutcome.filtered: ("undelivered", 30007),
    SmsOutcome.failed: ("failed", 30008),
}


def sms_final(outcome: SmsOutcome) -> tuple[str, int | None]:
    """Twilio's final ``MessageStatus`` and ``ErrorCode`` for an outcome."""
    return _SMS_FINAL[outcome]


class CallOutcome(StrEnum):
    """How a call ends. In ``voice_mix`` a ``human`` draw becomes ``confirmed`` with
    probability ``confirm_share``; overrides name ``confirmed`` or ``human`` exactly."""

    #: answered by a person who pressed 1 (the Gather action gets Digits=1)
    confirmed = "confirmed"
    #: answered by a person who did not press anything
    human = "human"
    #: answered by voicemail or an answering machine
    machine = "machine"
    no_answer = "no_answer"
    busy = "busy"
    failed = "failed"


_CALL_FINAL: Final[dict[CallOutcome, str]] = {
    CallOutcome.confirmed: "completed",
    CallOutcome.human: "completed",
    CallOutcome.machine: "completed",
    CallOutcome.no_answer: "no-answer",
    CallOutcome.busy: "busy",
    CallOutcome.failed: "failed",
}


def call_final_status(outcome: CallOutcome) -> str:
    """Twilio's final ``CallStatus`` for an outcome."""
    return _CALL_FINAL[outcome]


Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


def _default_sms_mix() -> dict[SmsOutcome, float]:
    return {
        SmsOutcome.delivered: 0.95,
        SmsOutcome.unreachable: 0.02,
        SmsOutcome.unknown: 0.01,
        SmsOutcome.landline: 0.005,
        SmsOutcome.filtered: 0.005,
        SmsOutcome.failed: 0.01,
    }


def _default_voice_mix() -> dict[CallOutcome, float]:
    return {
        CallOutcome.human: 0.70,
        CallOutcome.machine: 0.15,
        CallOutcome.no_answer: 0.10,
        CallOutcome.busy: 0.03,
        CallOutcome.failed: 0.02,
    }


def _check_mix(name: str, mix: dict[SmsOutcome, float] | dict[CallOutcome, float]) -> None:
    if any(share < 0 for share in mix.values()):
        raise ValueError(f"{name}: shares must not be negative")
    if not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"{name}: shares must add up to 1 (they add up to {sum(mix.values()):.6f})")


class DrillConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the drill carrier does differently from run to run."""

    #: The account the API answers for (HTTP Basic user) and that callbacks name.
    account_sid: str = DEFAULT_ACCOUNT_SID
    #: HTTP Basic password; also the key of every ``X-Twilio-Signature``.
    auth_token: str = DEFAULT_AUTH_TOKEN
    #: Seed of every draw: outcomes, latencies, call durations, injected HTTP errors.
    seed: int = 0
    #: Shares of SMS outcomes (must add up to 1).
    sms_mix: dict[SmsOutcome, float] = msgspec.field(default_factory=_default_sms_mix)
    #: Shares of call outcomes (must add up to 1).
    voice_mix: dict[CallOutcome, float] = msgspec.field(default_factory=_default_voice_mix)
    #: Among calls answered by a person, the share who press 1.
    confirm_share: Share = 0.8
    #: Range of the time from create to the final status, in milliseconds (min, max).
    latency_ms: tuple[NonNegativeInt, NonNegativeInt] = (200, 2000)
    #: Call length reported in ``CallDuration`` for answered calls, seconds (min, max).
    call_duration_s: tuple[NonNegativeInt, NonNegativeInt] = (15, 60)
    #: Share of create requests answered 429 (code 20429, Retry-After) without creating anything.
    http_429_share: Share = 0.0
    #: Share of create requests answered 500 or 503 without creating anything.
    http_5xx_share: Share = 0.0
    #: Seconds in the Retry-After header of a 429.
    retry_after_s: NonNegativeInt = 1
    #: Number -> SMS outcome, exact (beats the mix).
    sms_overrides: dict[str, SmsOutcome] = msgspec.field(default_factory=dict)
    #: Number -> call outcome, exact (beats the mix and confirm_share).
    call_overrides: dict[str, CallOutcome] = msgspec.field(default_factory=dict)
    #: Numbers that texted STOP: SMS to them is refused with 21610.
    opted_out: frozenset[str] = frozenset()
    #: Landlines and other numbers that cannot take SMS: refused with 21614 (calls work).
    not_sms_capable: frozenset[str] = frozenset()
    #: App push tokens the push gateway answers as UNREGISTERED (the app was removed).
    unregistered_tokens: frozenset[str] = frozenset()
    #: The sender used when a message names only a MessagingServiceSid.
    messaging_service_from: str = "+15005550006"
    #: Post status callbacks at all (off for pure throughput benchmarks).
    callbacks: bool = True
    #: Callbacks posted at the same time, at most.
    callback_concurrency: PositiveInt = 32
    #: Give up on one callback POST after this many seconds.
    callback_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: Share of messages/calls whose final status callback is posted twice (tracker tests).
    duplicate_share: Share = 0.0
    #: Share of messages/calls whose status callbacks are posted in reverse order.
    reorder_share: Share = 0.0
    #: Where inbound SMS (STOP/START/HELP, replies) are posted; empty: nowhere.
    inbound_sms_url: str = ""
    #: Messages and calls kept in memory (the oldest are forgotten first).
    max_records: PositiveInt = 200_000

    def __post_init__(self) -> None:
        _check_mix("sms_mix", self.sms_mix)
        _check_mix("voice_mix", self.voice_mix)
        for name, (low, high) in (("latency_ms", self.latency_ms), ("call_duration_s", self.call_duration_s)):
            if low > high:
                raise ValueError(f"{name}: minimum {low} is above maximum {high}")
        if self.http_429_share + self.http_5xx_share > 1.0 + 1e-9:
            raise ValueError("http_429_share + http_5xx_share must not exceed 1")
