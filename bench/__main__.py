"""Run every benchmark: python -m bench (or make bench)."""

from __future__ import annotations

import asyncio

from bench import (
    area_api,
    fanout,
    geo_area,
    geo_isolation,
    geo_memory,
    ingest,
    notice_preview,
    notify_render,
    playbook_path,
    public_feeds,
    recovery,
    timeline_append,
)

if __name__ == "__main__":
    asyncio.run(timeline_append.main([]))
    print()
    asyncio.run(ingest.main([]))
    print()
    asyncio.run(fanout.main([]))
    print()
    asyncio.run(recovery.main([]))
    print()
    playbook_path.main([])
    for sync_bench in (geo_area, geo_isolation, area_api, geo_memory, notify_render, notice_preview):
        print()
        sync_bench.main([])
    print()
    public_feeds.main([])
