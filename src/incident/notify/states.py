"""Delivery states and the rule that a delivery never moves backwards (pure).

Carrier callbacks arrive late, twice, or out of order (``sent`` after ``delivered``): a
change is applied only when it moves a delivery forward. Final states stay final, except
that a voice call that was completed can still be confirmed (the household pressed 1).
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    draft = "draft"  # in a notice that is not approved yet
    planned = "planned"  # approved, not yet handed to a sender
    queued = "queued"  # a job for it is on the notify-jobs topic
    sending = "sending"  # a sender took it; the carrier's answer is not recorded yet
    retry = "retry"  # to be tried again at next_attempt_at
    unknown = "unknown"  # a send was interrupted: look it up at the carrier before retrying
    accepted = "accepted"  # the carrier took it (Twilio: queued / accepted)
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    # voice
    ringing = "ringing"
    answered = "answered"
    completed = "completed"
    no_answer = "no_answer"
    busy = "busy"
    confirmed = "confirmed"
    cancelled = "cancelled"


S = DeliveryState
_RANK: dict[DeliveryState, int] = {
    S.draft: 0,
    S.planned: 0,
    S.retry: 1,
    S.unknown: 1,
    S.queued: 1,
    S.sending: 2,
    S.accepted: 3,
    S.sent: 4,
    S.ringing: 4,
    S.answered: 5,
    S.delivered: 6,
    S.undelivered: 6,
    S.failed: 6,
    S.completed: 6,
    S.no_answer: 6,
    S.busy: 6,
    S.cancelled: 6,
    S.confirmed: 7,
}
FINAL = frozenset(
    {S.delivered, S.undelivered, S.failed, S.completed, S.no_answer, S.busy, S.cancelled, S.confirmed}
)
#: States a sender may take a delivery from.
SENDABLE = frozenset({S.planned, S.retry})
#: Outcomes that count as reaching the household.
REACHED = frozenset({S.delivered, S.completed, S.confirmed, S.answered})


def moves_forward(current: DeliveryState, new: DeliveryState) -> bool:
    """Whether a callback reporting ``new`` may change a delivery that is ``current``."""
    if current == new:
        return False
    if current in FINAL:
        return current in (S.completed, S.answered) and new == S.confirmed
    # A retry or an unknown outcome restarts the attempt: only the sender moves it on.
    return _RANK[new] > _RANK[current]


#: Twilio's MessageStatus / CallStatus values, as our states.
TWILIO_STATUS: dict[str, DeliveryState] = {
    "accepted": S.accepted,
    "queued": S.accepted,
    "sending": S.accepted,
    "scheduled": S.accepted,
    "sent": S.sent,
    "delivered": S.delivered,
    "read": S.delivered,
    "undelivered": S.undelivered,
    "failed": S.failed,
    "canceled": S.cancelled,
    "initiated": S.accepted,
    "ringing": S.ringing,
    "in-progress": S.answered,
    "answered": S.answered,
    "completed": S.completed,
    "busy": S.busy,
    "no-answer": S.no_answer,
}
