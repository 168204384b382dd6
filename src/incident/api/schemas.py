"""Request and response bodies of the HTTP API (their JSON Schemas go into OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from incident.core.auth import TokenName
from incident.core.domain import Incident, Severity, Status, Text, TimelineEvent
from incident.core.timeline import Integrity

Reason = Annotated[str, msgspec.Meta(max_length=1000)]


class StatusBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: Status
    reason: Reason | None = None


class SeverityBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    severity: Severity
    reason: Reason | None = None


class PublicBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: True: residents see the incident (public page, feeds); false: they no longer do.
    public: bool
    reason: Reason | None = None


class NoteBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: Text


class HandoverBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    to: TokenName
    reason: Reason | None = None


class IncidentList(msgspec.Struct, frozen=True):
    incidents: list[Incident]
    #: The cursor of the next page; None on the last.
    next_cursor: str | None = None


class Timeline(msgspec.Struct, frozen=True):
    incident: Incident
    #: A page of events in sequence order (``next_cursor`` goes on).
    events: list[TimelineEvent]
    #: The check of the whole chain, whichever page this is.
    integrity: Integrity
    next_cursor: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


class Me(msgspec.Struct, frozen=True):
    name: str
    role: str


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, frozen=True):
    error: ErrorDetail
