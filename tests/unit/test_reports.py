"""Report decoding and validation: every malformed kind gets its own code."""

from __future__ import annotations

import orjson
import pytest

from incident.reports.model import RejectCode, ReportRejected, parse_report
from tests.support.ingest import GOOD, MALFORMED, with_fields


def test_the_contract_example_is_valid() -> None:
    report = parse_report(orjson.dumps(GOOD), 65536)
    assert report.report_id == GOOD["report_id"]
    assert report.observed == "2026-11-22T00:15:00.000000+00:00"  # normalised to UTC
    assert report.asset is not None and report.asset.id == "P-500"


def test_location_or_asset_alone_is_enough() -> None:
    assert parse_report(with_fields(asset=...), 65536).location is not None
    assert parse_report(with_fields(location=...), 65536).asset is not None


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

    assert declaration_from(
        parse_report(with_fields(details={"drill": True, "drill_run": "r1"}), 65536)
    ).drill
    assert not declaration_from(parse_report(with_fields(), 65536)).drill
    assert not declaration_from(parse_report(with_fields(details={"drill": "yes"}), 65536)).drill
