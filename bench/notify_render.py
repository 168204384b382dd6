"""Rendering one notice for a million households: the per-notice cache against a naive
per-household Jinja2 render, same run.

    python -m bench.notify_render [--households N] [--sample N] [--channels sms,voice,push]

Households get a language tag from a fixed mix (zh-CN, en, en-US, zh-cn, zh_CN, zh, fr, es;
fr and es fall back to en). For each household and channel, ours asks the
:class:`~incident.notices.templates.NoticeCache` (render once per key, channel and tag, then a dict
lookup); the baseline renders the compiled template for every household
(:meth:`~incident.notices.templates.NoticeTemplates.render`: language match, variables, Jinja2,
size cap). Templates are compiled once in both. The baseline is too slow to run a million
times in a benchmark, so it runs on the first ``--sample`` households and is
extrapolated linearly (it does the same work per household); the report says so. The
two are checked to give the same text for the sample.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from incident.core.domain import Kind, Utility
from incident.households import Channel
from incident.notices.context import NoticeContext
from incident.notices.templates import Rendered, load_templates
from incident.settings import BUNDLED_DIR

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = BUNDLED_DIR / "templates" / "notices"
MIX = {"zh-CN": 50, "en": 25, "en-US": 8, "zh-cn": 6, "zh_CN": 3, "zh": 3, "fr": 3, "es": 2}


def _languages(count: int) -> list[str]:
    rng = random.Random(7)
    return rng.choices(list(MIX), weights=list(MIX.values()), k=count)


def _context() -> NoticeContext:
    return NoticeContext(
        utility_name="Riverside Water",
        utility_phone="+86 21 5555 0100",
        utility_url="https://riverside.example/outage",
        incident_id="INC-2026-000042",
        kind=Kind.contamination,
        utility=Utility.water,
        area="Elm St 1-99",
        area_i18n={"zh-CN": "榆树街1-99号"},
        etr=datetime(2026, 11, 22, 6, 30, tzinfo=UTC),
        timezone="Asia/Shanghai",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000, help="households the naive baseline renders")
    parser.add_argument("--channels", default="sms", help="comma-separated: sms,voice,push")
    parser.add_argument("--key", default="boil_water")
    args = parser.parse_args(argv)
    channels = [Channel(name) for name in args.channels.split(",")]
    languages = _languages(args.households)
    context = _context()

    started = time.perf_counter()
    templates = load_templates(TEMPLATES)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    cache = templates.cache(context)
    ours: list[Rendered] = [cache.render(args.key, ch, tag) for tag in languages for ch in channels]
    ours_s = time.perf_counter() - started

    sample = languages[: args.sample]
    started = time.perf_counter()
    naive = [templates.render(args.key, ch, tag, context) for tag in sample for ch in channels]
    naive_sample_s = time.perf_counter() - started
    naive_s = naive_sample_s * len(languages) / len(sample)
    if naive != ours[: len(naive)]:
        raise SystemExit("the cached and the naive render disagree")

    fell_back = sum(r.fell_back for r in ours)
    renders = len(languages) * len(channels)
    print(
        f"notice {args.key!r} on {','.join(channels)} for {len(languages):,} households ({renders:,} renders)"
    )
    print(f"  load + compile {len(list(templates.paths()))} templates: {load_s * 1000:.1f} ms")
    scale = len(languages) / len(sample)
    print(f"  ours, NoticeCache:           {ours_s:8.3f} s  ({len(cache)} renders, {fell_back:,} fell back)")
    print(
        f"  naive, render per household: {naive_s:8.3f} s  "
        f"(measured {naive_sample_s:.3f} s on {len(sample):,}, extrapolated x{scale:.0f})"
    )
    print(f"  ratio naive / ours:          {naive_s / ours_s:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
