"""Resident memory of 1,000,000 households loaded with their index, measured in a subprocess.

    python -m bench.geo_memory [--households N]

Writes a deterministic households CSV (bench/geo_synth.py) to a temporary folder, then in a
fresh interpreter: imports the geo package, reads VmRSS, loads the sample network, valves
and zone layers with the households through :func:`load_service_area` (columns, grid index,
service connections, segments), and reads VmRSS and the peak (VmHWM) again. Baseline, in
the same run and the same way: the households as a tuple of :class:`Household` objects
(what the index held before), without any index.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.geo_synth import SAMPLE, households, write_csv
from incident.households import read_network

CHILD = """
import gc, json, sys, time
def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out
import incident.geo as geo
from incident.households.table import HouseholdTable
before = status()
started = time.perf_counter()
if sys.argv[2] == "ours":
    kept = geo.load_service_area(
        sys.argv[1], SAMPLE + "/layers", SAMPLE + "/network.inp", SAMPLE + "/valves.csv"
    )
    count = len(kept.households)
else:
    kept = tuple(h for h in geo.iter_households_file(sys.argv[1]) if isinstance(h, geo.Household))
    count = len(kept)
seconds = time.perf_counter() - started
gc.collect()
after = status()
print(json.dumps({"count": count, "seconds": seconds, "before": before["VmRSS"], "after": after["VmRSS"],
                  "peak": after["VmHWM"]}))
"""


def measure(path: Path, what: str) -> dict[str, float]:
    code = f"SAMPLE = {str(SAMPLE)!r}\n" + CHILD
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", code, str(path), what], check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "households.csv"
        write_csv(households(read_network(SAMPLE / "network.inp"), args.households), path)
        print(f"{args.households:,} households, CSV of {path.stat().st_size / 2**20:.0f} MiB")
        rows = []
        for what, label in [
            ("objects", "baseline: tuple of Household, no index"),
            ("ours", "ours: load_service_area"),
        ]:
            r = measure(path, what)
            rows.append(r)
            grew = r["after"] - r["before"]
            print(
                f"  {label:<40} loaded {r['count']:,} in {r['seconds']:.1f} s; RSS {r['after']:.0f} MB "
                f"(+{grew:.0f} MB over the {r['before']:.0f} MB of imports), peak {r['peak']:.0f} MB"
            )
    base, ours = rows
    ratio = (base["after"] - base["before"]) / (ours["after"] - ours["before"])
    print(f"ours resident {ours['after']:.0f} MB (goal: under 400 MB); growth ratio to baseline {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
