"""Run every benchmark: python -m bench (or make bench)."""

from __future__ import annotations

import asyncio

from bench import timeline_append

if __name__ == "__main__":
    asyncio.run(timeline_append.main([]))
