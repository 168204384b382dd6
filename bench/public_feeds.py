"""The residents' side under load: the public feeds (and the public incident list, when the
service has it) with 200 concurrent clients from a second process on loopback, against the
same feeds built on every request, same run.

    python -m bench.public_feeds [--incidents N] [--connections N] [--seconds S]

The real app (``create_app``: SQLite store in a temporary folder, embedded broker, the bundled
sample area, playbooks and sending off) with ``--incidents`` public incidents, each made
public by an approved notice and updated by a second one (two CAP alerts, both languages),
on the sample area's Maple St. The load: ``wrk`` (Debian's ``wrk`` package), 2 threads,
``--connections`` connections, ``--seconds`` per URL (after a 2 s warm-up run of each app),
in its own process.

- *Ours*: the feeds as served: built once per change, kept in memory (``[feeds]`` defaults:
  the store asked at most every 5 s whether anything changed). Also the Atom feed asked with
  the ``If-None-Match`` a feed reader sends (304, no body).
- *Baseline*: the same app with ``[feeds] cache = false``: each request reads the public
  incidents, their timelines and notices, renders every alert and builds the feed.
- ``/public/api/incidents`` and ``/public/`` (the public page), when the app serves them, as
  they are.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from incident.app import create_app
from incident.core.auth import add_token
from incident.core.domain import Role
from incident.settings import Settings, load_settings

FEEDS = ("/public/feeds/cap.atom", "/public/feeds/outages.geojson")
PAGES = ("/public/api/incidents", "/public/")
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def box(i: int) -> dict[str, Any]:
    """Boxes around Maple St in the sample area (a few hundred households each)."""
    dx, dy = (i % 5) * 0.002, (i // 5) * 0.002
    x0, y0, x1, y1 = -85.56 + dx, 38.02 + dy, -85.53 + dx, 38.05 + dy
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def populate(http: ClientSession, n: int) -> None:
    for i in range(n):
        body = {
            "kind": "main_break",
            "utility": "water",
            "title": f"bench {i}",
            "severity": "high",
            "area": box(i),
        }
        async with http.post("/api/incidents", json=body) as resp:
            assert resp.status == 201, await resp.text()
            incident_id = (await resp.json())["id"]
        etr = (datetime.now(UTC) + timedelta(hours=6)).isoformat(timespec="seconds")
        for template, facts in (("main_break", {}), ("etr_update", {"etr": etr})):
            notice = {"template": template, "channels": ["sms"], "facts": {"area": "Maple St", **facts}}
            async with http.post(f"/api/incidents/{incident_id}/notices", json=notice) as resp:
                assert resp.status == 201, await resp.text()
                notice_id = (await resp.json())["notice"]["notice_id"]
            async with http.post(f"/api/incidents/{incident_id}/notices/{notice_id}/approve") as resp:
                assert resp.status == 200, await resp.text()


async def wrk(
    url: str, connections: int, seconds: int, headers: dict[str, str] | None = None
) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) of ``wrk`` against ``url``."""
    args = ["-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        "wrk", *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out = (await proc.communicate())[0].decode()
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if proc.returncode != 0 or rate is None or p99 is None:
        raise RuntimeError(f"wrk failed:\n{out}")
    if "Non-2xx or 3xx responses" in out or "Socket errors" in out:
        found = [row.strip() for row in out.splitlines() if "errors" in row or "Non-2xx" in row]
        print(f"    (wrk: {'; '.join(found)})")
    return float(rate[1]), float(p99[1]) * _UNIT[p99[2]]


def line(label: str, rate: float, p99: float, baseline: tuple[float, float] | None = None) -> str:
    text = f"  {label:<52} {rate:>9,.0f} req/s   p99 {p99:>7.1f} ms"
    if baseline is not None:
        text += f"   ratio {rate / baseline[0]:>6.1f}x req/s, p99 {p99 / baseline[1]:.2f}x"
    return text


async def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        print("bench.public_feeds skipped: it needs wrk (apt-get install -y wrk)")
        return
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        token = add_token(tmp / "tokens.toml", "alice", Role.dispatcher)
        env = {
            "INCIDENT_STORE__URL": f"sqlite:///{tmp / 'bench.db'}",
            "INCIDENT_AUTH__TOKENS_FILE": str(tmp / "tokens.toml"),
            "INCIDENT_KAFKA__EMBEDDED_LISTENER": "127.0.0.1:0", "INCIDENT_PLAYBOOKS__ENABLED": "false",
            "INCIDENT_NOTIFY__SEND": "false", "INCIDENT_KAFKA__CONSUME_REPORTS": "false",
            "INCIDENT_PUBLIC__REQUESTS_PER_MINUTE": "0", "INCIDENT_LOG__LEVEL": "WARNING",
        }  # fmt: skip
        cached = await asyncio.to_thread(load_settings, None, env)
        uncached = await asyncio.to_thread(load_settings, None, {**env, "INCIDENT_FEEDS__CACHE": "false"})
        c, s = args.connections, args.seconds
        results: dict[str, tuple[float, float]] = {}
        async with serve(cached) as url:
            async with ClientSession(url, headers={"Authorization": f"Bearer {token}"}) as http:
                await populate(http, args.incidents)
                sizes = {}
                for path in (*FEEDS, *PAGES):
                    async with http.get(path) as resp:
                        sizes[path] = (resp.status, len(await resp.read()), resp.headers.get("ETag", ""))
            print(f"{args.incidents} public incidents, 2 CAP alerts each; wrk -t2 -c{c} -d{s}s per URL")
            for path, (status, size, _) in sizes.items():
                print(f"  {path:<40} {status}  {size / 1024:8.1f} KiB")
            print("\nours (cached, built once per change)")
            await wrk(url + FEEDS[0], c, 2)  # warm-up: 200 connections opened, first answers
            for path in FEEDS:
                results[path] = await wrk(url + path, c, s)
                print(line(path, *results[path]))
            etag = sizes[FEEDS[0]][2]
            results["304"] = await wrk(url + FEEDS[0], c, s, {"If-None-Match": etag})
            print(line(f"{FEEDS[0]} If-None-Match (304)", *results["304"]))
            for path in PAGES:
                if sizes[path][0] == 200:
                    print(line(path, *await wrk(url + path, c, s)))
                else:
                    print(f"  {path:<52} not served ({sizes[path][0]})")
        async with serve(uncached) as url:
            print("\nbaseline: [feeds] cache = false (built on every request), and ours against it")
            await wrk(url + FEEDS[1], c, 2)  # warm-up
            for path in FEEDS:
                base = await wrk(url + path, c, s)
                print(line(path + " (baseline)", *base))
                print(line(path + " (ours)", *results[path], base))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=20)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
