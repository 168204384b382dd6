"""Correlation of reports into incidents (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incident.core.domain import Kind, Severity, Utility
from incident.reports.correlation import Candidate, Declare, Link, Sighting, Unassigned, decide, haversine_m
from incident.reports.model import Asset, Location, Report
from incident.settings import CorrelationSettings

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ELM = (-85.6100, 38.0400)
SETTINGS = CorrelationSettings()  # 500 m, 6 h, default rules


def report(
    rid: str,
    kind: Kind = Kind.low_pressure,
    *,
    at: datetime = T0,
    lonlat: tuple[float, float] | None = ELM,
    asset: tuple[str, str] | None = None,
    utility: Utility = Utility.water,
    severity: Severity = Severity.medium,
) -> Report:
    return Report(
        report_id=rid,
        kind=kind,
        utility=utility,
        source="scada",
        observed_at=at,
        severity=severity,
        location=Location(*lonlat) if lonlat else None,
        asset=Asset(*asset) if asset else None,
    )


def main_break(**kw: Any) -> Candidate:
    sightings = [Sighting("r0", T0, ELM[0], ELM[1], ("pipe", "P-500"))]
    return Candidate("INC-2026-000001", Kind.main_break, Utility.water, kw.get("area"), sightings)


def offset(metres_north: float) -> tuple[float, float]:
    return (ELM[0], ELM[1] + metres_north / 111_195)


def test_haversine_is_right_at_known_distances() -> None:
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-3)
    assert haversine_m(*ELM, *offset(300)) == pytest.approx(300, rel=1e-3)


def test_same_asset_links_whatever_the_distance_and_kind() -> None:
    [d] = decide(
        [report("r1", Kind.contamination, lonlat=None, asset=("pipe", "P-500"), at=T0 + timedelta(days=3))],
        [main_break()],
        SETTINGS,
    )
    assert isinstance(d, Link) and d.ref == "INC-2026-000001" and "same asset pipe P-500" in d.reason


@pytest.mark.parametrize(
    ("metres", "minutes", "kind", "linked"),
    [
        (300, 30, Kind.low_pressure, True),
        (499, 359, Kind.unplanned_outage, True),
        (600, 30, Kind.low_pressure, False),  # too far
        (300, 400, Kind.low_pressure, False),  # too late
        (300, 30, Kind.heat_outage, False),  # not compatible with a main break
    ],
)
def test_distance_time_and_kind(metres: float, minutes: int, kind: Kind, linked: bool) -> None:
    r = report(
        "r1",
        kind,
        at=T0 + timedelta(minutes=minutes),
        lonlat=offset(metres),
        utility=Utility.heat if kind == Kind.heat_outage else Utility.water,
    )
    [d] = decide([r], [main_break()], SETTINGS)
    assert isinstance(d, Link) == linked
    if isinstance(d, Link):
        assert f"{metres} m" in d.reason


def test_other_utility_never_links() -> None:
    [d] = decide(
        [report("r1", Kind.gas_leak, utility=Utility.gas, asset=("pipe", "P-500"))], [main_break()], SETTINGS
    )
    assert isinstance(d, Declare)  # a gas leak opens its own incident


def test_inside_an_incident_area_links_without_reports_nearby() -> None:
    from shapely.geometry import box

    area = box(-85.70, 38.00, -85.65, 38.03)
    candidate = Candidate("INC-2026-000009", Kind.main_break, Utility.water, area, [])
    [inside, outside] = decide(
        [report("r1", lonlat=(-85.68, 38.02)), report("r2", lonlat=(-85.50, 38.02))], [candidate], SETTINGS
    )
    assert isinstance(inside, Link) and inside.reason == "inside the incident area"
    assert isinstance(outside, Unassigned)


def test_nearest_incident_wins() -> None:
    far = Candidate("INC-A", Kind.main_break, Utility.water, None, [Sighting("a", T0, *offset(400))])
    near = Candidate("INC-B", Kind.main_break, Utility.water, None, [Sighting("b", T0, *offset(100))])
    [d] = decide([report("r1")], [far, near], SETTINGS)
    assert isinstance(d, Link) and d.ref == "INC-B"


def test_auto_declare_rules_and_severity_threshold() -> None:
    decisions = decide(
        [
            report("gas", Kind.gas_leak, utility=Utility.gas, severity=Severity.low),
            report("lab-low", Kind.contamination, lonlat=(-80.0, 35.0), severity=Severity.medium),
            report("lab-high", Kind.contamination, lonlat=(-81.0, 35.0), severity=Severity.critical),
        ],
        [],
        SETTINGS,
    )
    gas, lab_low, lab_high = decisions
    assert isinstance(gas, Declare) and not gas.rule.confirm
    assert isinstance(lab_low, Unassigned)
    assert isinstance(lab_high, Declare) and lab_high.rule.confirm


def test_a_batch_can_join_an_incident_it_opened() -> None:
    first = report("lab-1", Kind.contamination, severity=Severity.high)
    second = report(
        "lab-2", Kind.contamination, severity=Severity.high, lonlat=offset(200), at=T0 + timedelta(minutes=20)
    )
    opened, joined = decide([first, second], [], SETTINGS)
    assert isinstance(opened, Declare) and opened.ref == "new:0"
    assert isinstance(joined, Link) and joined.ref == "new:0"


def test_unmatched_report_waits_in_triage() -> None:
    [d] = decide([report("r1", lonlat=(-84.0, 39.0))], [main_break()], SETTINGS)
    assert isinstance(d, Unassigned)
