"""What the store keeps of notices and deliveries (pure data)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

from incident.core.clock import Timestamp
from incident.deliveries.states import DeliveryState
from incident.households.model import Channel


class Encoding(StrEnum):
    """How an SMS travels (see :mod:`incident.notices.sms`)."""

    gsm7 = "gsm7"
    ucs2 = "ucs2"


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    """One rendered notice as the dispatcher sees it before approving.

    ``encoding``, ``units`` and ``segments`` describe the SMS channel only (None elsewhere);
    ``title`` and ``body`` split a push notice, and an email (``title`` is its subject);
    None elsewhere.
    """

    key: str
    channel: Channel
    language_requested: str
    language_used: str
    fell_back: bool
    text: str
    characters: int
    encoding: Encoding | None = None
    units: int | None = None
    segments: int | None = None
    title: str | None = None
    body: str | None = None
    warnings: tuple[str, ...] = ()
    #: Households that get this text on this channel (one per address: households sharing a
    #: number count once, under the first one's language).
    households: int = 0


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    by: str
    at: Timestamp


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """A notice planned for an incident: its template, channels, audience, counts and the
    exact texts that go out (``previews``)."""

    notice_id: str
    incident_id: str
    template: str
    channels: list[str]
    #: planning -> planned -> approved; ``held`` (a fact is missing: see ``missing_facts``),
    #: ``superseded`` (planned again as ``superseded_by``)
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
    #: For each channel and household language, the exact text (or spoken script) that goes
    #: out, drill marker included, with the households that get it and its SMS parts.
    previews: list[Preview] = msgspec.field(default_factory=list)
    #: Channels asked for that the notice does not go out on, and why (``{"email": "no
    #: email template for boil_water"}``).
    skipped_channels: dict[str, str] = msgspec.field(default_factory=dict)
    #: What was asked for (template, channels, audience, facts): planning again starts here.
    request: dict[str, Any] = msgspec.field(default_factory=dict)
    #: The incident's last timeline event when planned: a change of the area or of a fact
    #: after it makes the plan stale.
    basis_seq: int = 0
    #: Facts the notice cannot go without that were not there (``["area"]``): it is held.
    missing_facts: list[str] = msgspec.field(default_factory=list)
    #: Why it is held or stale, for the dispatcher.
    message: str | None = None
    #: Stale: the area or a fact changed after planning (not stored; worked out when read).
    stale: bool = False
    stale_facts: list[str] = msgspec.field(default_factory=list)
    #: People who approved it, in order; ``approvals_required`` of them release it.
    approvals: list[Approval] = msgspec.field(default_factory=list)
    approvals_required: int = 1
    #: The playbook action that planned it (its key), if any.
    action: str | None = None
    replaces: str | None = None
    superseded_by: str | None = None


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
