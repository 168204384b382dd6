"""An area change through the API: isolation of a broken pipe on BWSN Network 2 with
1,000,000 households, against the trace and household count alone, same run.

    python -m bench.area_api [--households N] [--changes N]

Network: BWSN Network 2 from ``epyt`` with WNTR's strategic N-1 valve layer, as in
``bench.geo_isolation``; households: ``bench.geo_synth`` (seed 7) around its pipes. The
service area is built once in this process and handed to the real app (``create_app``:
SQLite store in a temporary folder, embedded broker, playbooks off) in place of loading
the configured files: the households registry import is not what is measured.

- *Ours*: ``PUT /api/incidents/{id}/area`` with ``{"isolate": {"pipe": P}}`` (replace) over
  HTTP on localhost, one at a time, for random pipes: trace, dry band, households, counts,
  the ``area_changed`` event in the store, the live feed, the JSON answer. Median and p90.
- *Core only*: :func:`incident.households.isolate_pipe` and :func:`incident.incidents.areas.counts` for the
  same pipes, in process: the least any answer could cost.
- The pipe look-up (``GET /api/network/pipes/P``) is timed the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

import incident.app as app_module
from bench.geo_isolation import network_path
from bench.geo_synth import households
from incident.core.auth import add_token
from incident.core.domain import Role
from incident.geo import LinkKind, Valve, ZoneSet
from incident.households import ServiceArea, build_service_area, isolate_pipe, read_network
from incident.incidents.areas import counts
from incident.settings import Settings, load_settings

GOAL_MS = 150.0


def build(n: int) -> ServiceArea:
    import wntr

    path = network_path()
    network = read_network(path, "EPSG:3089")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = wntr.network.WaterNetworkModel(str(path))
    layer = wntr.network.generate_valve_layer(wn, "strategic", 1, seed=5)
    valves = [Valve(str(i), str(row["link"]), str(row["node"])) for i, row in layer.iterrows()]
    return build_service_area(households(network, n), ZoneSet.build([]), network, valves)


@asynccontextmanager
async def serve(settings: Settings, service: ServiceArea) -> AsyncIterator[str]:
    async def prebuilt(*_: Any) -> ServiceArea:
        return service

    app_module.load_service_area = prebuilt  # type: ignore[assignment]
    runner = web.AppRunner(app_module.create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _ms(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {statistics.median(values) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    service = await asyncio.to_thread(build, args.households)
    network = service.network
    assert network is not None
    took = time.perf_counter() - started
    print(
        f"BWSN_Network_2: {len(network.nodes):,} nodes, {len(network.links):,} links; "
        f"{len(service.households):,} households (service area built in {took:.1f} s)"
    )
    pipes = random.Random(3).sample([k.id for k in network.links if k.kind is LinkKind.pipe], args.changes)

    core = []
    for pipe in pipes:
        t0 = time.perf_counter()
        iso = isolate_pipe(service, pipe, (), 30.0)
        counts(service, iso.households)
        core.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        token = add_token(tmp / "tokens.toml", "alice", Role.dispatcher)
        settings = load_settings(None, {
            "INCIDENT_STORE__URL": f"sqlite:///{tmp / 'bench.db'}",
            "INCIDENT_AUTH__TOKENS_FILE": str(tmp / "tokens.toml"),
            "INCIDENT_KAFKA__EMBEDDED_LISTENER": "127.0.0.1:0", "INCIDENT_PLAYBOOKS__ENABLED": "false",
            "INCIDENT_NOTIFY__SEND": "false", "INCIDENT_KAFKA__CONSUME_REPORTS": "false",
        })  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        async with serve(settings, service) as url, ClientSession(url, headers=headers) as http:
            body = {"kind": "main_break", "utility": "water", "title": "bench", "severity": "high"}
            async with http.post("/api/incidents", json=body) as resp:
                assert resp.status == 201, await resp.text()
                incident_id = (await resp.json())["id"]
            api, sizes, look_up = [], [], []
            for i, pipe in enumerate([*pipes[:3], *pipes]):  # three to warm up
                t0 = time.perf_counter()
                async with http.put(
                    f"/api/incidents/{incident_id}/area", json={"isolate": {"pipe": pipe}}
                ) as r:
                    raw = await r.read()
                    assert r.status == 200, raw[:300]
                if i >= 3:
                    api.append(time.perf_counter() - t0)
                    sizes.append(len(raw))
                t0 = time.perf_counter()
                async with http.get(f"/api/network/pipes/{pipe}") as r:
                    await r.read()
                    assert r.status == 200
                if i >= 3:
                    look_up.append(time.perf_counter() - t0)

    ratio = statistics.median(api) / statistics.median(core)
    print(f"\narea change by isolation, {len(pipes)} random broken pipes (replace), one at a time")
    print(f"  core only: isolate_pipe + counts     {_ms(core)}")
    print(
        f"  ours: PUT /api/incidents/{{id}}/area   {_ms(api)}   ratio {ratio:.1f}x core"
        f" (goal: median under {GOAL_MS:.0f} ms); answer {statistics.median(sizes) / 1024:.1f} KiB median"
    )
    print(f"  pipe look-up GET /api/network/pipes  {_ms(look_up)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
