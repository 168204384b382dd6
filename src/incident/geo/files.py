"""The thin file layer: paths in, the pure types out. The only module here that opens files.

Households stream: :func:`iter_households_file` yields row by row and reports progress
(rows done, bytes read of bytes total) so a CLI can draw a bar over a large file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from incident.geo.errors import FileFormatError
from incident.geo.geojson import iter_features
from incident.geo.household import Household, iter_households_csv, iter_households_geojson
from incident.geo.layers import Zone, ZoneSet, zones_from_features
from incident.geo.network import Network, Valve, network_from_features, parse_inp, parse_valves_csv
from incident.geo.rows import RejectedRow
from incident.geo.service_area import LoadReport, ServiceArea, build_service_area

_CHUNK = 1 << 16
_GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass(frozen=True, slots=True)
class Progress:
    rows: int
    bytes_read: int
    bytes_total: int


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class HouseholdLoad:
    households: tuple[Household, ...]
    rejected: tuple[RejectedRow, ...]


def _is_geojson(path: Path) -> bool:
    return path.suffix.lower() in _GEOJSON_SUFFIXES


def iter_households_file(
    path: str | Path, progress: ProgressFn | None = None, every: int = 1000
) -> Iterator[Household | RejectedRow]:
    """Yield each row of a households file (CSV, or GeoJSON by its suffix) as it is read."""
    path = Path(path)
    total = path.stat().st_size
    rows = 0
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        if _is_geojson(path):
            chunks = iter(lambda: text.read(_CHUNK), "")
            stream = iter_households_geojson(chunks)
        else:
            stream = iter_households_csv(text)
        try:
            for item in stream:
                yield item
                rows += 1
                if progress is not None and rows % every == 0:
                    # The binary position runs ahead by at most one buffered chunk.
                    progress(Progress(rows, min(raw.tell(), total), total))
        except UnicodeDecodeError:
            raise FileFormatError(f"{path.name}: not UTF-8 text near byte {raw.tell()}") from None
    if progress is not None and (rows == 0 or rows % every):
        progress(Progress(rows, total, total))


def load_households(path: str | Path, progress: ProgressFn | None = None) -> HouseholdLoad:
    good: list[Household] = []
    bad: list[RejectedRow] = []
    for item in iter_households_file(path, progress):
        if isinstance(item, Household):
            good.append(item)
        else:
            bad.append(item)
    return HouseholdLoad(tuple(good), tuple(bad))


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older EPANET tools write Latin-1.
        return data.decode("latin-1")


def read_network(path: str | Path, crs: str | None = None) -> Network:
    """An EPANET ``.inp`` file, or a GeoJSON FeatureCollection of links and nodes."""
    path = Path(path)
    text = _read_text(path)
    if _is_geojson(path):
        return network_from_features(iter_features([text]), crs)
    return parse_inp(text.splitlines(), crs)


def read_valves(path: str | Path, network: Network) -> tuple[list[Valve], list[RejectedRow]]:
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        return parse_valves_csv(f, network)


def read_layers(folder: str | Path, crs: str | None = None) -> tuple[ZoneSet, list[tuple[str, RejectedRow]]]:
    """Every ``*.geojson``/``*.json`` in ``folder`` (or that one file) is a layer named by its stem."""
    folder = Path(folder)
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _GEOJSON_SUFFIXES)
    else:
        raise FileFormatError(f"zone layers: {folder} is neither a folder nor a file")
    zones: list[Zone] = []
    rejected: list[tuple[str, RejectedRow]] = []
    for file in files:
        with file.open(encoding="utf-8-sig") as f:
            layer_zones, layer_rejected = zones_from_features(
                iter_features(iter(lambda: f.read(_CHUNK), "")), file.stem, crs
            )
        zones.extend(layer_zones)
        rejected.extend((file.stem, r) for r in layer_rejected)
    return ZoneSet.build(zones), rejected


def load_service_area(
    households: str | Path,
    layers: str | Path | None = None,
    network: str | Path | None = None,
    valves: str | Path | None = None,
    crs: str | None = None,
    *,
    max_distance_m: float = 100.0,
    progress: ProgressFn | None = None,
) -> ServiceArea:
    """Load the ``[area]`` files of the configuration into one :class:`ServiceArea`.

    ``crs`` is the network's; zone layers are GeoJSON and so lon/lat (RFC 7946).
    """
    loaded = load_households(households, progress)
    zones, zones_rejected = read_layers(layers) if layers else (ZoneSet.build([]), [])
    net = read_network(network, crs) if network else None
    valve_list, valves_rejected = read_valves(valves, net) if valves and net else ([], [])
    report = LoadReport(loaded.rejected, tuple(valves_rejected), tuple(zones_rejected))
    return build_service_area(
        loaded.households, zones, net, valve_list, max_distance_m=max_distance_m, report=report
    )
