"""A notice preview for 1,000,000 households (what ``POST …/notices/preview`` computes): ours
against the streaming planner's count path, same run.

    python -m bench.notice_preview [--households N] [--repeat N] [--channels sms,voice,push]

The area covers the whole service area (every household). *Ours* is the preview's work as the
service does it: resolve the area to households (:func:`incident.incidents.areas.resolve`), put them in
notify order and count the audience by column operations (:mod:`incident.notices.audience`),
then render one text per channel and language (:func:`incident.notices.service.render_previews`).
The address keys it counts over are made once when the service loads the households (timed
and printed apart).
*Core* is the counting alone (notify order and :func:`count_audience`). The *baseline* is the
count path planning had (and still streams deliveries with): a :class:`Household` per
selected row and :func:`plan_deliveries` over them, consumed without storing anything.
The two counts are checked equal.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.geo_synth import SAMPLE, households
from incident.core.domain import Kind, Utility
from incident.geo.layers import ZoneSet
from incident.households import Channel, HouseholdIndex, iter_households, read_network
from incident.households.service_area import ServiceArea
from incident.incidents.areas import resolve
from incident.notices.audience import count_audience, notify_order, prepare_address_keys
from incident.notices.context import NoticeContext
from incident.notices.planner import AudienceCounts, plan_deliveries
from incident.notices.service import PublicArea, count_for_area, render_previews
from incident.notices.templates import load_templates
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[1]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--channels", default="sms,voice,push")
    args = parser.parse_args(argv)
    channels = [Channel(c) for c in args.channels.split(",")]
    table = households(read_network(SAMPLE / "network.inp"), args.households)
    service = ServiceArea(households=HouseholdIndex.build(table), zones=ZoneSet.build([]))
    pad = 0.01
    lon0, lon1 = float(table.lon.min()) - pad, float(table.lon.max()) + pad
    lat0, lat1 = float(table.lat.min()) - pad, float(table.lat.max()) + pad
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    parts = [{"op": "add", "method": "drawn", "geometry": {"type": "Polygon", "coordinates": [ring]}}]
    templates = load_templates(BUNDLED_DIR / "templates" / "notices")
    area = PublicArea("Maple St 1-99", {"en": "Maple St 1-99", "zh-CN": "枫树街1-99号"}, "description")
    context = NoticeContext(
        utility_name="Sampletown Water", utility_phone="+1 555 0100", utility_url="https://sampletown.example",
        incident_id="INC-2026-000001", kind=Kind.main_break, utility=Utility.water, area=area.text,
        area_i18n=area.i18n, etr=datetime(2026, 11, 22, 18, tzinfo=UTC),
    )  # fmt: skip

    def ours() -> tuple[AudienceCounts, int]:
        counts = count_for_area(service, parts, 30.0, channels, None, {})
        texts = render_previews(
            templates, "main_break", channels, context, counts.by_channel_language, area,
            default_language="en", max_segments=3,
        )  # fmt: skip
        return counts, len(texts)

    positions = resolve(service, parts, 30.0).selection.positions

    def core() -> AudienceCounts:
        return count_audience(table, notify_order(table, positions), channels, AudienceCounts())

    def baseline() -> AudienceCounts:
        counts = AudienceCounts()
        selection = resolve(service, parts, 30.0).selection
        for _ in plan_deliveries(iter_households(service.households, selection), channels, counts):
            pass
        return counts

    started = time.perf_counter()
    prepare_address_keys(table)  # as the service does when it loads the households
    keys_s = time.perf_counter() - started
    ours_s, (found, texts) = _best(ours, args.repeat)
    core_s, counted = _best(core, args.repeat)
    base_s, expected = _best(baseline, max(1, args.repeat // 5))
    if found.as_dict() != expected.as_dict() or counted.as_dict() != expected.as_dict():
        raise SystemExit("the column count and the planner's count disagree")
    print(
        f"notice preview for {found.households:,} households on {', '.join(c.value for c in channels)}"
        f" ({found.as_dict()['deliveries']:,} deliveries, {texts} texts)"
    )
    print(f"  ours, the preview's work (area, counts, texts): {ours_s * 1000:8.0f} ms  (goal: under 1 s)")
    print(f"  core, counting alone (order + columns):         {core_s * 1000:8.0f} ms")
    print(f"  baseline, streaming plan_deliveries count:      {base_s * 1000:8.0f} ms")
    print(f"  ratio baseline / ours:                          {base_s / ours_s:8.1f}x")
    print(f"  (once per households table, at load: address keys of 3 channels {keys_s * 1000:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
