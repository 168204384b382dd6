"""Delivery states and the rule that a delivery never moves backwards (pure).

Carrier callbacks arrive late, twice, or out of order (``sent`` after ``delivered``): a
change is applied only when it moves a delivery forward. Final states stay final, except
that a voice call that was completed can still be confirmed (the household pressed 1).

One move goes back, by design and only by the fan-out itself: a delivery ``claimed`` by a
sender whose carrier call never started is released to ``planned`` when that sender is gone
(see :data:`RELEASABLE`). Nothing was handed to the carrier, so sending it is not sending twice.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    draft = "draft"  # in a notice that is not approved yet
    planned = "planned"  # approved, not yet handed to a sender
    queued = "queued"  # a job for it is on the notify-jobs topic
    claimed = "claimed"  # a sender holds it to send soon; its carrier call has not started
    sending = "sending"  # its carrier call started; the carrier's answer is not recorded yet
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
    S.claimed: 2,
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
#: Before the carrier call: only the fan-out moves a delivery on from these, never a carrier
#: callback (a late callback of the previous try must not overtake the retry).
BEFORE_SEND = frozenset({S.draft, S.planned, S.queued, S.claimed, S.retry})
#: Not tried yet: approved and waiting, published, or held by a sender (not ``retry``).
NOT_TRIED = frozenset({S.planned, S.queued, S.claimed, S.sending})
#: Released (back to ``planned``) when the sender holding it is gone: no carrier call started.
RELEASABLE = frozenset({S.claimed})
#: The carrier has it and its final status is still to come (by callback, else by look-up).
#: App push is not among them: a push gateway gives no receipts, so for push ``sent`` (the
#: gateway took it) is the last word (:func:`is_final`).
AWAITING_FINAL = frozenset({S.accepted, S.sent, S.ringing, S.answered})
#: The channel whose ``sent`` is final: nothing can ever move it on.
NO_RECEIPTS = "push"


def is_final(channel: str, state: DeliveryState) -> bool:
    """Whether nothing more will happen to a delivery (push: once the gateway took it)."""
    return state in FINAL or (channel == NO_RECEIPTS and state is S.sent)


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


# --- the states in SQL: the stores build every state list of their statements from here ----------


def sql_list(*states: DeliveryState) -> str:
    """States as SQL literals, ``'planned', 'retry'`` (sorted): for ``state IN (...)`` and
    ``state = ...`` in the stores' statements, so no state is spelt twice."""
    return ", ".join(f"'{s.value}'" for s in sorted(states))
