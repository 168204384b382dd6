"""Build the sample service area in this folder, deterministically.

    python tools/generate_sample.py                 # valves, zone layers, 3000 households
    python tools/generate_sample.py --from-wntr     # also re-derive network.inp (needs wntr)
    python tools/generate_sample.py --households 200000 --out var/big   # larger, not committed

The network is ``ky4`` from the Kentucky water distribution research database, as shipped
in the ``wntr`` package; its coordinates are Kentucky Single Zone feet (EPSG:3089) and are
converted to lon/lat here so the file works with an empty ``[area] crs``. Everything else
(valves, zones, households, phone numbers) is synthetic: see README.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.geometry import mapping

from incident.geo.network import LinkKind, Network, NodeKind, Valve, parse_inp
from incident.geo.projection import LocalMetric

HERE = Path(__file__).resolve().parents[1] / "src" / "incident" / "bundled" / "sample"
SOURCE_CRS = "EPSG:3089"  # NAD83 / Kentucky Single Zone (ftUS)
SEED = 20261122

LANGUAGES = (("en", 0.70), ("es", 0.12), ("zh-CN", 0.08), ("vi", 0.04), ("ar", 0.03), ("fr", 0.03))
# Area codes (Kentucky's first) with the 555-0100..0199 block reserved for fiction.
# fmt: off
AREA_CODES = tuple("""
    502 270 606 859 364 201 202 203 205 206 207 208 209 210 212 213
    214 215 216 217 218 219 224 225 228 229 231 234 239 240 248 251
    252 253 254 256 260 262 267 269 276 281 301 302 303 304 305 307
    308 309 310 312 313 314 315 316 317 318 319 320
""".split())  # noqa: SIM905
# fmt: on
STREETS = (
    "Maple",
    "Oak",
    "Cedar",
    "Elm",
    "Walnut",
    "Hickory",
    "Poplar",
    "Sycamore",
    "Willow",
    "Chestnut",
    "Locust",
    "Dogwood",
    "Magnolia",
    "Redbud",
    "Buckeye",
    "Laurel",
    "Spring",
    "Mill",
    "Church",
    "Ridge",
)  # fmt: skip
STREET_KINDS = ("St", "Ave", "Rd", "Ln", "Dr", "Ct", "Pike")
FACILITIES = ("Elementary School", "Dialysis Center", "Nursing Home", "Clinic", "Daycare", "Fire Station")


def wntr_ky4() -> Path:
    spec = importlib.util.find_spec("wntr")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--from-wntr needs the wntr package (pip install wntr)")
    return Path(next(iter(spec.submodule_search_locations))) / "library" / "networks" / "ky4.inp"


def convert_inp(text: str, crs: str = SOURCE_CRS) -> str:
    """The .inp text with [COORDINATES] and [VERTICES] converted from ``crs`` to lon/lat."""
    lines = text.splitlines()
    section = ""
    where: list[tuple[int, str]] = []
    xy: list[tuple[float, float]] = []
    for i, line in enumerate(lines):
        stripped = line.split(";", 1)[0].strip()
        if stripped.startswith("["):
            section = stripped.upper()
            continue
        if section in ("[COORDINATES]", "[VERTICES]") and stripped:
            name, x, y = stripped.split()[:3]
            where.append((i, name))
            xy.append((float(x), float(y)))
    to_lonlat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    arr = np.array(xy)
    lon, lat = to_lonlat.transform(arr[:, 0], arr[:, 1])
    for (i, name), x, y in zip(where, lon.tolist(), lat.tolist(), strict=True):
        lines[i] = f" {name:<16}\t{x:.7f}\t{y:.7f}"
    for i, line in enumerate(lines):
        if line.strip().upper() == "[TITLE]":
            lines.insert(
                i + 1, f"ky4 (Kentucky WDS research database, via wntr); coordinates {crs} -> lon/lat"
            )
            break
    return "\n".join(lines) + "\n"


def strategic_valves(network: Network, seed: int = SEED) -> list[Valve]:
    """A patchy N-1 valve layer: at seven crossings in ten every link but one gets a valve
    next to the node (as utilities place them, not everywhere); sources get a valve on every
    link. Deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fiction, not secrets
    around: dict[str, list[str]] = {n.id: [] for n in network.nodes}
    for link in network.links:
        around[link.start].append(link.id)
        around[link.end].append(link.id)
    valves: list[Valve] = []
    for node in network.nodes:
        links = sorted(around[node.id])
        if node.kind is not NodeKind.junction:
            chosen = links
        elif len(links) >= 3 and rng.random() < 0.7:
            skip = rng.randrange(len(links))
            chosen = [k for i, k in enumerate(links) if i != skip]
        else:
            continue
        valves.extend(Valve(f"V-{len(valves) + 1:04d}", k, node.id) for k in chosen)
    return valves


def _voronoi_layer(
    network: Network, count: int, prefix: str, name: str, seed: int, local: LocalMetric, hull: Any,
    name_zh: str = "",
) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible fiction, not secrets
    nodes = sorted(network.nodes, key=lambda n: n.id)
    picks = rng.sample(nodes, count)
    seeds = shapely.multipoints(local.xy(np.array([(n.lon, n.lat) for n in picks])))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=hull))
    features = []
    ordered = sorted((c.intersection(hull) for c in cells), key=lambda c: (-c.centroid.y, c.centroid.x))
    for i, cell in enumerate(ordered, start=1):
        geom = local.unproject(cell)
        geom = shapely.set_precision(geom, 1e-6)
        features.append(
            {
                "type": "Feature",
                "id": f"{prefix}{i:02d}",
                # Per-language names: public notices say them for "where".
                "properties": {"name": f"{name} {i}", "name:zh-CN": f"{name_zh}{i}"},
                "geometry": mapping(geom),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def zone_layers(network: Network, seed: int = SEED) -> dict[str, dict[str, Any]]:
    lonlat = np.array([(n.lon, n.lat) for n in network.nodes])
    local = LocalMetric(*((lonlat.min(axis=0) + lonlat.max(axis=0)) / 2))
    hull = shapely.convex_hull(shapely.multipoints(local.xy(lonlat))).buffer(400.0, quad_segs=4)
    return {
        "pressure_zones": _voronoi_layer(network, 4, "PZ-", "Pressure zone", seed, local, hull, "压力区"),
        "dmas": _voronoi_layer(network, 12, "DMA-", "District metered area", seed + 1, local, hull, "计量分区"),
    }


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def synthesize_households(network: Network, count: int, seed: int = SEED) -> list[dict[str, str]]:
    """Rows of a households CSV: points 8-40 m off a pipe (about 1.5 % far from any)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fiction, not secrets
    pipes = [k for k in network.links if k.kind is LinkKind.pipe]
    lonlat = np.array([p for k in pipes for p in k.path])
    local = LocalMetric(*((lonlat.min(axis=0) + lonlat.max(axis=0)) / 2))
    lines = [shapely.LineString(local.xy(np.array(k.path))) for k in pipes]
    lengths = [ln.length for ln in lines]
    numbers = [f"+1{a}5550{n:03d}" for a in AREA_CODES for n in range(100, 200)]
    rng.shuffle(numbers)
    next_number = iter(numbers * (1 + 3 * count // len(numbers)))
    picks = rng.choices(range(len(lines)), weights=lengths, k=count)
    rows: list[dict[str, str]] = []
    points: list[tuple[float, float]] = []
    for which in picks:
        line = lines[which]
        at = rng.uniform(0.0, line.length)
        p, q = line.interpolate(at), line.interpolate(min(at + 1.0, line.length))
        dx, dy = q.x - p.x, q.y - p.y
        norm = math.hypot(dx, dy) or 1.0
        far = rng.random() < 0.015
        off = rng.uniform(250.0, 400.0) if far else rng.uniform(8.0, 40.0)
        side = rng.choice((-1.0, 1.0))
        points.append((p.x - side * off * dy / norm, p.y + side * off * dx / norm))
    lonlat_points = local.lonlat(np.array(points))
    for i, (lon, lat) in enumerate(lonlat_points.tolist(), start=1):
        r = rng.random()
        priority = (
            "medical" if r < 0.02 else "critical_facility" if r < 0.025 else "vulnerable" if r < 0.065 else ""
        )
        street = f"{rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
        name = f"{rng.choice(STREETS)} {rng.choice(FACILITIES)}, " if priority == "critical_facility" else ""
        sms = next(next_number) if rng.random() < 0.85 else ""
        voice = "" if rng.random() >= 0.6 else (sms if sms and rng.random() < 0.3 else next(next_number))
        r = rng.random()
        opt_out = "sms" if r < 0.05 else "voice" if r < 0.07 else "sms|voice" if r < 0.08 else ""
        rows.append(
            {
                "account_id": f"ACC-{i:06d}",
                "lon": f"{lon:.6f}",
                "lat": f"{lat:.6f}",
                "address": f"{name}{rng.randint(100, 9899)} {street}, Sampletown KY",
                "language": _pick(rng, LANGUAGES),
                "sms": sms,
                "voice": voice,
                "app_token": f"app-{rng.getrandbits(48):012x}" if rng.random() < 0.35 else "",
                "priority": priority,
                "opt_out": opt_out,
            }
        )
    return rows


def write_households(rows: list[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--from-wntr", action="store_true", help="re-derive network.inp from wntr's ky4.inp")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    network_path = out / "network.inp"
    if args.from_wntr:
        network_path.write_text(convert_inp(wntr_ky4().read_text(encoding="utf-8")), encoding="utf-8")
    elif not network_path.exists():
        network_path.write_bytes((HERE / "network.inp").read_bytes())
    network = parse_inp(network_path.read_text(encoding="utf-8").splitlines())

    with (out / "valves.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["valve_id", "pipe", "node"])
        writer.writerows((v.id, v.pipe, v.node) for v in strategic_valves(network, args.seed))
    (out / "layers").mkdir(exist_ok=True)
    for name, layer in zone_layers(network, args.seed).items():
        text = json.dumps(layer, indent=1, ensure_ascii=False)  # zone names in Chinese stay readable
        (out / "layers" / f"{name}.geojson").write_text(text + "\n", encoding="utf-8")
    write_households(synthesize_households(network, args.households, args.seed), out / "households.csv")
    print(f"wrote the sample service area to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
