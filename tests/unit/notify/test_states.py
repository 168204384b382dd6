from __future__ import annotations

import itertools

import pytest

from incident.deliveries.states import FINAL, TWILIO_STATUS, DeliveryState, moves_forward

S = DeliveryState


@pytest.mark.parametrize(
    ("path", "applied"),
    [
        ([S.accepted, S.sent, S.delivered], [S.accepted, S.sent, S.delivered]),
        ([S.accepted, S.delivered, S.sent], [S.accepted, S.delivered]),  # late "sent" ignored
        ([S.delivered, S.delivered], [S.delivered]),  # duplicate callback ignored
        ([S.sent, S.undelivered, S.delivered], [S.sent, S.undelivered]),  # final stays final
        (
            [S.ringing, S.answered, S.completed, S.confirmed],
            [S.ringing, S.answered, S.completed, S.confirmed],
        ),
        ([S.answered, S.confirmed, S.completed], [S.answered, S.confirmed]),  # confirmed outranks completed
        ([S.accepted, S.no_answer, S.confirmed], [S.accepted, S.no_answer]),
    ],
)
def test_callbacks_in_any_order_never_move_a_delivery_backwards(
    path: list[DeliveryState], applied: list[DeliveryState]
) -> None:
    state = S.sending
    taken = []
    for new in path:
        if moves_forward(state, new):
            state = new
            taken.append(new)
    assert taken == applied


def test_final_states_only_allow_a_confirmation_after_a_call() -> None:
    for final, new in itertools.product(FINAL, DeliveryState):
        allowed = moves_forward(final, new)
        assert allowed == (final in (S.completed,) and new == S.confirmed), (final, new)


def test_every_twilio_status_maps_to_a_state() -> None:
    for status in ("queued", "sent", "delivered", "undelivered", "failed", "ringing", "in-progress",
                   "completed", "busy", "no-answer"):  # fmt: skip
        assert status in TWILIO_STATUS
