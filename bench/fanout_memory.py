# ruff: noqa: E501 - the child script is one string, read as the code it is
"""Memory of the whole service during a fan-out to 1,000,000 households, in a fresh process.

    python -m bench.fanout_memory [--households N] [--send-seconds S]

Writes a deterministic households CSV (bench/geo_synth.py) first, in this process. Then a
child interpreter runs the real app (create_app: SQLite store, embedded Kafka, the notify
engine) against a zero-latency Twilio-compatible server in a third process, imports the
households at start, plans an SMS notice to the whole service area, approves it and sends
for S seconds. The child samples its resident memory every 0.2 s and prints the peak
(VmHWM) per phase: nothing of the data generation is in it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.geo_synth import SAMPLE, households, write_csv
from incident.households import read_network

CHILD = r"""
import asyncio, json, sys, time
from pathlib import Path

def mb(key):
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k == key:
            return int(v.split()[0]) / 1024
    return 0.0

async def main(csv, sample, tmp, send_seconds):
    from incident.core.memory import limit_allocator_arenas
    limit_allocator_arenas()  # as `incident serve` does
    from aiohttp import web
    from incident.app import create_app
    from incident.core.auth import Principal
    from incident.core.domain import Declaration, Kind, Role, Severity, Utility
    from incident.households.model import Channel
    from incident.keys import INCIDENTS, NOTICES, SERVICE_AREA, SETTINGS, STORE
    from incident.notices.service import NoticeFacts, NoticeRequest
    from incident.notices.context import TemplateKey
    from incident.incidents.areas import AreaRequest
    from incident.carriersim.server import serve_drill
    from incident.carriersim.config import DrillConfig, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
    from incident.settings import load_settings
    import json as _json

    phases = {}
    peak = {"v": 0.0}
    async def sample_rss():
        while True:
            peak["v"] = max(peak["v"], mb("VmRSS"))
            await asyncio.sleep(0.2)
    sampler = asyncio.create_task(sample_rss())
    zones = [str(f["id"]) for f in _json.loads(Path(sample, "layers", "pressure_zones.geojson").read_text())["features"]]
    async with serve_drill(DrillConfig(callbacks=False)) as drill:
        env = {
            "INCIDENT_STORE__URL": f"sqlite:///{tmp}/mem.db", "INCIDENT_KAFKA__EMBEDDED_LISTENER": "127.0.0.1:0",
            "INCIDENT_AREA__HOUSEHOLDS": csv, "INCIDENT_CARRIER__MODE": "twilio",
            "INCIDENT_TWILIO__API_BASE_URL": drill.url, "INCIDENT_TWILIO__ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
            "INCIDENT_TWILIO__AUTH_TOKEN": DEFAULT_AUTH_TOKEN, "INCIDENT_TWILIO__FROM_NUMBER": "+15005550006",
            "INCIDENT_TWILIO__PUBLIC_BASE_URL": "http://127.0.0.1:9", "INCIDENT_TWILIO__MESSAGES_PER_SECOND": "100000",
            "INCIDENT_NOTIFY__QUIET_HOURS": "", "INCIDENT_PLAYBOOKS__ENABLED": "false",
            "INCIDENT_AUTH__TOKENS_FILE": f"{tmp}/tokens.toml",
        }
        settings = load_settings(None, env)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        t = time.perf_counter()
        await runner.setup()  # imports the households into the store, loads the service area
        phases["start (import + load 1M households)"] = (time.perf_counter() - t, peak["v"], mb("VmHWM"))
        peak["v"] = mb("VmRSS")  # from here on: the fan-out
        who = Principal("bench", Role.admin)
        inc = await app[INCIDENTS].declare(Declaration(kind=Kind.main_break, utility=Utility.water,
                                                       title="bench", severity=Severity.high), who)
        iid = inc.incident.id
        await app[INCIDENTS].set_area(iid, AreaRequest(zones=zones), who, app[SERVICE_AREA].value, 30.0)
        t = time.perf_counter()
        planned = await app[NOTICES].plan(iid, NoticeRequest(template=TemplateKey.boil_water, channels=[Channel.sms],
                                          facts=NoticeFacts(area="everywhere")), who, app[SERVICE_AREA].value, 30.0)
        phases["plan (render, store every delivery)"] = (time.perf_counter() - t, peak["v"], mb("VmHWM"))
        await app[NOTICES].approve(iid, planned.notice.notice_id, who)
        t = time.perf_counter()
        await asyncio.sleep(send_seconds)
        counts = await app[STORE].delivery_counts(iid)
        sent = sum(n for s, n in counts.get("sms", {}).items() if s not in ("planned", "queued", "sending"))
        phases[f"send for {send_seconds:.0f} s ({sent:,} handed over)"] = (time.perf_counter() - t, peak["v"], mb("VmHWM"))
        deliveries = planned.notice.counts.get("deliveries", 0)
        await runner.cleanup()
    sampler.cancel()
    print(json.dumps({"deliveries": deliveries, "phases": phases}))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--send-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "households.csv"
        write_csv(households(read_network(Path(SAMPLE) / "network.inp"), args.households), csv)
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", CHILD, str(csv), str(SAMPLE), tmp, str(args.send_seconds)],
            check=True, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"Fan-out memory: {args.households:,} households, {result['deliveries']:,} SMS planned")
    print(
        "  phase                                               seconds   RSS peak (MB, sampled every 0.2 s)"
    )
    for phase, (seconds, rss, hwm) in result["phases"].items():
        print(f"  {phase:<50} {seconds:>7.1f}   {rss:>8,.0f}   (process high-water mark {hwm:,.0f})")
    print("  goal: under 500 MB during a 1,000,000-household fan-out (planning and sending)")


if __name__ == "__main__":
    main()
