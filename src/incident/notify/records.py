"""What the store keeps of notices and deliveries (pure data)."""

from __future__ import annotations

from typing import Any

import msgspec

from incident.clock import Timestamp
from incident.notify.states import DeliveryState


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A notice planned for an incident: its template, channels, audience and counts."""

    notice_id: str
    incident_id: str
    template: str
    channels: list[str]
    #: planning -> planned -> approved -> sending -> sent (or cancelled)
    status: str
    created_by: str
    created_at: Timestamp
    approved_by: str | None = None
    approved_at: Timestamp | None = None
    #: Quiet hours: not before this time (ISO, UTC), or None.
    send_after: Timestamp | None = None
    counts: dict[str, Any] = msgspec.field(default_factory=dict)
    #: The rendering context (utility, area description, ETR, drill, ...).
    context: dict[str, Any] = msgspec.field(default_factory=dict)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One message to one address on one channel. ``address`` is personal data: stored to
    send, never logged and never a metric label."""

    delivery_id: str
    notice_id: str
    incident_id: str
    seq: int
    channel: str
    address: str
    account_id: str
    language: str
    priority_rank: int
    state: DeliveryState
    attempts: int = 0
    carrier_sid: str | None = None
    error_code: str | None = None
    not_before: str | None = None
    next_attempt_at: str | None = None
    #: The delivery this one falls back from (an undelivered SMS becomes a voice call).
    fallback_of: str | None = None
    updated_at: str = ""


class DeliveryChange(msgspec.Struct, frozen=True, kw_only=True):
    """A compare-and-set on one delivery: applied only if its state is in ``expect``."""

    delivery_id: str
    expect: frozenset[DeliveryState]
    to: DeliveryState
    carrier_sid: str | None = None
    error_code: str | None = None
    next_attempt_at: str | None = None
    count_attempt: bool = False
    #: Recorded in the delivery's own event log (never a phone number).
    detail: str = ""
