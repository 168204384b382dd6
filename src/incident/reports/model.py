"""Reports: what SCADA, the lab, field crews, the call centre and the app tell us (pure).

:func:`parse_report` turns a Kafka message value into a :class:`Report` or raises
:class:`ReportRejected` with a stable code for the dead-letter headers and metrics.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from incident.core.clock import Timestamp, isoformat
from incident.core.domain import Kind, Severity, Utility

ReportId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]


class Asset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: Short
    id: Short


class Report(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A report as the contract defines it (topic ``utility.reports``)."""

    report_id: ReportId
    kind: Kind
    utility: Utility
    source: Short
    observed_at: Annotated[datetime, msgspec.Meta(tz=True)]
    location: Location | None = None
    asset: Asset | None = None
    severity: Severity
    summary: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def observed(self) -> str:
        """``observed_at`` in the timeline's text form (UTC), which sorts as time does."""
        return isoformat(self.observed_at)


class ReportStatus(StrEnum):
    unassigned = "unassigned"
    linked = "linked"
    dismissed = "dismissed"


class StoredReport(msgspec.Struct, frozen=True, kw_only=True):
    """A report as the store keeps it, with where it came from and where it went."""

    report: Report
    status: ReportStatus
    incident_id: str | None = None
    received_at: Timestamp
    #: topic/partition/offset, or "api" for reports entered by hand.
    origin: str
    #: Why it was linked, declared or dismissed; and by whom.
    note: str | None = None
    triaged_by: str | None = None


class RejectCode(StrEnum):
    oversized = "oversized"
    not_utf8 = "not_utf8"
    not_json = "not_json"
    not_an_object = "not_an_object"
    missing_field = "missing_field"
    unknown_field = "unknown_field"
    wrong_type = "wrong_type"
    bad_enum = "bad_enum"
    bad_timestamp = "bad_timestamp"
    out_of_range = "out_of_range"
    coordinates_out_of_range = "coordinates_out_of_range"
    no_location_or_asset = "no_location_or_asset"
    control_character = "control_character"
    #: ``details`` nested deeper than :data:`MAX_DETAILS_DEPTH`.
    too_deep = "too_deep"
    #: Decoding or validating raised something unforeseen (e.g. RecursionError on a report
    #: nested a thousand deep); the message names the exception type.
    unparseable = "unparseable"
    #: Valid as a report, yet the store refused it (found when a batch fails and is split).
    store_rejected = "store_rejected"


class ReportRejected(Exception):
    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message


_decoder = msgspec.json.Decoder(Report)

#: Deepest ``details`` accepted. The store writes details as JSON with orjson, which refuses
#: more than 254 levels, and PostgreSQL refuses NUL in JSON text and SQLite integers beyond
#: 64 bits: refuse all three here, the same way on both stores, rather than in the store.
MAX_DETAILS_DEPTH = 32
_INT_RANGE = (-(2**63), 2**63 - 1)


def _classify(err: msgspec.ValidationError) -> RejectCode:
    text = str(err)
    msg, sep, where = text.rpartition(" - at `")
    if not sep:
        msg, where = text, ""
    if where.startswith("$.observed_at"):
        return RejectCode.bad_timestamp
    if where.startswith("$.location") and ("<=" in msg or ">=" in msg):
        return RejectCode.coordinates_out_of_range
    if msg.startswith("Object missing required field"):
        return RejectCode.missing_field
    if msg.startswith("Object contains unknown field"):
        return RejectCode.unknown_field
    if msg.startswith("Invalid enum value"):
        return RejectCode.bad_enum
    if msg.startswith("Expected `object`") and not where:
        return RejectCode.not_an_object
    if msg.startswith("Expected `") and ", got `" in msg:
        return RejectCode.wrong_type
    return RejectCode.out_of_range


def parse_report(value: bytes | None, max_bytes: int) -> Report:
    """Decode and validate one message value. Whatever the bytes, the only exception is
    :class:`ReportRejected`: anything unforeseen becomes code ``unparseable``."""
    try:
        return _parse(value, max_bytes)
    except ReportRejected:
        raise
    except Exception as err:  # RecursionError or any surprise: one message's problem, not the batch's
        raise ReportRejected(RejectCode.unparseable, f"{type(err).__name__}: {err}"[:500]) from None


def _parse(value: bytes | None, max_bytes: int) -> Report:
    if value is None:
        raise ReportRejected(RejectCode.not_json, "message has no value")
    if len(value) > max_bytes:
        raise ReportRejected(RejectCode.oversized, f"message is {len(value)} bytes; the limit is {max_bytes}")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReportRejected(RejectCode.not_utf8, f"not UTF-8 at byte {err.start}") from None
    try:
        report = _decoder.decode(value)
    except msgspec.ValidationError as err:
        raise ReportRejected(_classify(err), str(err)) from None
    except msgspec.DecodeError as err:
        raise ReportRejected(RejectCode.not_json, str(err)) from None
    if report.location is None and report.asset is None:
        raise ReportRejected(RejectCode.no_location_or_asset, "a report needs a location, an asset or both")
    try:
        report.observed  # noqa: B018 - a year-1 time may not convert to UTC: find out here
    except (OverflowError, ValueError) as err:
        raise ReportRejected(RejectCode.bad_timestamp, f"observed_at cannot be read as UTC: {err}") from None
    texts = [report.report_id, report.source, report.summary]
    if report.asset is not None:
        texts += [report.asset.type, report.asset.id]
    if any("\x00" in t for t in texts):
        raise ReportRejected(RejectCode.control_character, "a text field contains a NUL character")
    _check_details(report.details, 1)
    return report


def _check_details(value: Any, depth: int) -> None:
    """Refuse what the stores cannot keep; ``depth`` is bounded, so is the recursion."""
    if isinstance(value, dict):
        items: list[Any] = list(value.values())
        if any("\x00" in k for k in value):
            raise ReportRejected(RejectCode.control_character, "a details key contains a NUL character")
    elif isinstance(value, list):
        items = value
    else:
        if isinstance(value, str) and "\x00" in value:
            raise ReportRejected(RejectCode.control_character, "a details text contains a NUL character")
        if isinstance(value, int) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise ReportRejected(RejectCode.out_of_range, "a details number does not fit in 64 bits")
        return
    if depth > MAX_DETAILS_DEPTH:
        raise ReportRejected(
            RejectCode.too_deep, f"details are nested deeper than {MAX_DETAILS_DEPTH} levels"
        )
    for item in items:
        _check_details(item, depth + 1)
