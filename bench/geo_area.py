"""Households in an area, 1,000,000 households: ours against two baselines, same run.

    python -m bench.geo_area [--households N] [--repeat N]

Ours: :func:`incident.households.households_in_area` over a :class:`HouseholdIndex` built once
(packed grid; only points near the outline are tested). Baselines, on the same points and
areas: ``shapely.contains_xy`` over every point (the naive scan), and a GeoPandas spatial
join (``geopandas.sjoin``, predicate ``intersects``, over a GeoDataFrame of the points made
in advance, its spatial index built before timing). Areas cover about 5 % of the
households: a district metered area from the sample layers, a gas-leak radius, and a
drawn 200-vertex polygon. Every answer is checked against an exact full scan
(``shapely.intersects_xy``: ours counts a house on the outline as inside).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import numpy as np
import shapely

from bench.geo_synth import SAMPLE, households
from incident.geo import Area, area_around_point, area_from_geojson, area_from_zones
from incident.households import HouseholdIndex, households_in_area, read_layers, read_network


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _areas(index: HouseholdIndex) -> list[tuple[str, Area]]:
    zones, _ = read_layers(SAMPLE / "layers")
    n = len(index)
    # The DMA closest to 5 % of the households.
    share = {z.id: len(households_in_area(index, area_from_zones(zones, [z.id]))) / n for z in zones.zones}
    dma = min((z for z in share if z.startswith("DMA")), key=lambda z: abs(share[z] - 0.05))
    out = [(f"zone {dma}", area_from_zones(zones, [dma]))]
    lon, lat = float(np.median(index.lon)), float(np.median(index.lat))
    radius = 300.0
    while len(households_in_area(index, area_around_point(lon, lat, radius))) < 0.05 * n:
        radius *= 1.1
    out.append((f"radius {radius:.0f} m", area_around_point(lon, lat, radius)))
    rng = np.random.default_rng(3)
    angle = np.sort(rng.uniform(0, 2 * np.pi, 200))
    scale = 1.0
    while True:
        r = (0.8 + 0.2 * np.sin(angle * 5)) * 0.01 * scale
        ring = np.column_stack([lon - 0.02 + r * np.cos(angle) * 1.27, lat + 0.01 + r * np.sin(angle)])
        drawn = area_from_geojson({"type": "Polygon", "coordinates": [[*ring.tolist(), ring[0].tolist()]]})
        if len(households_in_area(index, drawn)) >= 0.05 * n:
            break
        scale *= 1.1
    out.append(("drawn, 200 vertices", drawn))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    import geopandas as gpd

    network = read_network(SAMPLE / "network.inp")
    started = time.perf_counter()
    table = households(network, args.households)
    made = time.perf_counter() - started
    started = time.perf_counter()
    index = HouseholdIndex.build(table)
    built = time.perf_counter() - started
    print(f"{len(index):,} households (made in {made:.1f} s); index built in {built * 1000:.0f} ms")
    lon, lat = index.lon, index.lat
    started = time.perf_counter()
    frame = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    frame.sindex  # noqa: B018 - build GeoPandas' STRtree before timing
    print(f"GeoDataFrame of the points with its spatial index: {time.perf_counter() - started:.1f} s")

    head = f"{'area':<22}{'share':>7}{'ours ms':>9}{'contains_xy ms':>16}{'ratio':>7}"
    print(f"\n{head}{'sjoin ms':>10}{'ratio':>7}")
    worst = 0.0
    for name, area in _areas(index):
        found = households_in_area(index, area)
        exact = np.flatnonzero(shapely.intersects_xy(area.geometry, lon, lat))
        if found.positions.tolist() != exact.tolist():
            raise SystemExit(f"{name}: ours and the exact scan disagree")
        ours = _best(lambda area=area: households_in_area(index, area), args.repeat)
        plain = shapely.from_wkb(shapely.to_wkb(area.geometry))  # unprepared, as a caller has it
        naive_hits: list[np.ndarray] = []

        def naive(plain: shapely.Geometry = plain, naive_hits: list[np.ndarray] = naive_hits) -> None:
            naive_hits.append(np.flatnonzero(shapely.contains_xy(plain, lon, lat)))

        scan = _best(naive, max(args.repeat // 4, 3))
        polygon = gpd.GeoDataFrame(geometry=[plain], crs="EPSG:4326")
        joined: list[np.ndarray] = []

        def sjoin(polygon: gpd.GeoDataFrame = polygon, joined: list[np.ndarray] = joined) -> None:
            joined.append(np.sort(gpd.sjoin(frame, polygon, predicate="intersects").index.to_numpy()))

        sj = _best(sjoin, 3)
        if joined[-1].tolist() != exact.tolist() or len(naive_hits[-1]) > len(exact):
            raise SystemExit(f"{name}: a baseline disagrees")
        worst = max(worst, ours)
        print(
            f"{name:<22}{len(found) / len(index):>6.1%}{ours * 1000:>9.2f}{scan * 1000:>16.1f}"
            f"{scan / ours:>6.0f}x{sj * 1000:>10.0f}{sj / ours:>6.0f}x"
        )
    print(f"\nslowest query {worst * 1000:.2f} ms (goal: under 20 ms); ours: best of {args.repeat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
