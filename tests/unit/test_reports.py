"""Report decoding and validation: every malformed kind gets its own code."""

from __future__ import annotations

import orjson
import pytest

from incident.reports.model import RejectCode, ReportRejected, parse_report

GOOD = {
    "report_id": "lims-2026-11-22-0042",
    "kind": "contamination",
    "utility": "water",
    "source": "lims",
    "observed_at": "2026-11-22T08:15:00+08:00",
    "location": {"lon": -85.61, "lat": 38.04},
    "asset": {"type": "pipe", "id": "P-500"},
    "severity": "high",
    "summary": "E. coli positive at sample tap ST-17",
    "details": {},
}


def _with(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def test_the_contract_example_is_valid() -> None:
    report = parse_report(orjson.dumps(GOOD), 65536)
    assert report.report_id == GOOD["report_id"]
    assert report.observed == "2026-11-22T00:15:00.000000+00:00"  # normalised to UTC
    assert report.asset is not None and report.asset.id == "P-500"


def test_location_or_asset_alone_is_enough() -> None:
    assert parse_report(_with(asset=...), 65536).location is not None
    assert parse_report(_with(location=...), 65536).asset is not None


MALFORMED: list[tuple[str, bytes, RejectCode]] = [
    ("not-utf8", b'{"report_id": "\xff\xfe"}', RejectCode.not_utf8),
    ("not-json", b'{"report_id": ', RejectCode.not_json),
    ("plain-text", b"pressure low at PZ-3", RejectCode.not_json),
    ("array", b'[{"report_id": "x"}]', RejectCode.not_an_object),
    ("null", b"null", RejectCode.not_an_object),
    ("missing-kind", _with(kind=...), RejectCode.missing_field),
    ("missing-id", _with(report_id=...), RejectCode.missing_field),
    ("unknown-field", _with(colour="red"), RejectCode.unknown_field),
    ("bad-kind", _with(kind="flood"), RejectCode.bad_enum),
    ("bad-utility", _with(utility="electricity"), RejectCode.bad_enum),
    ("bad-severity", _with(severity="urgent"), RejectCode.bad_enum),
    ("bad-timestamp", _with(observed_at="yesterday"), RejectCode.bad_timestamp),
    ("naive-timestamp", _with(observed_at="2026-11-22T08:15:00"), RejectCode.bad_timestamp),
    ("lon-out-of-range", _with(location={"lon": -185.6, "lat": 38.0}), RejectCode.coordinates_out_of_range),
    ("lat-out-of-range", _with(location={"lon": -85.6, "lat": 98.0}), RejectCode.coordinates_out_of_range),
    ("no-location-no-asset", _with(location=..., asset=...), RejectCode.no_location_or_asset),
    ("wrong-type", _with(source=7), RejectCode.wrong_type),
    ("empty-id", _with(report_id=""), RejectCode.out_of_range),
    ("oversized", _with(summary="x" * 1999, details={"blob": "y" * 70_000}), RejectCode.oversized),
    ("year-one", _with(observed_at="0001-01-01T00:00:00+08:00"), RejectCode.bad_timestamp),
    ("nul-in-id", _with(report_id="lims\u0000-1"), RejectCode.control_character),
    ("nul-in-asset", _with(asset={"type": "pipe", "id": "P\u00005"}), RejectCode.control_character),
]


@pytest.mark.parametrize(("value", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_reports_are_rejected_with_a_code(value: bytes, code: RejectCode) -> None:
    with pytest.raises(ReportRejected) as err:
        parse_report(value, 65536)
    assert err.value.code == code, err.value.message
    assert err.value.message


def test_a_message_without_value_is_rejected() -> None:
    with pytest.raises(ReportRejected):
        parse_report(None, 65536)


def test_a_drill_report_declares_an_exercise() -> None:
    from incident.intake.triage import declaration_from

    assert declaration_from(parse_report(_with(details={"drill": True, "drill_run": "r1"}), 65536)).drill
    assert not declaration_from(parse_report(_with(), 65536)).drill
    assert not declaration_from(parse_report(_with(details={"drill": "yes"}), 65536)).drill
