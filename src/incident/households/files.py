"""The thin file layer: paths in, the pure types out. The only module here that opens files.

Households stream: :func:`iter_households_file` yields row by row and reports progress
(rows done, bytes read of bytes total) so a CLI can draw a bar over a large file.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from incident.geo.errors import FileFormatError
from incident.geo.extent import Extent
from incident.geo.geojson import iter_features
from incident.geo.layers import Zone, ZoneSet, zones_from_features
from incident.geo.network import Network, Valve, network_from_features, parse_inp, parse_valves_csv
from incident.geo.rows import RejectedRow, RowNote
from incident.households.model import (
    Household,
    Numbered,
    RowValidator,
    numbered_households_csv,
    numbered_households_geojson,
)
from incident.households.phones import PhoneRules
from incident.households.service_area import LoadReport, ServiceArea, build_service_area, service_extent
from incident.households.table import HouseholdTable, HouseholdTableBuilder

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


@dataclass(frozen=True, slots=True)
class HouseholdTableLoad:
    """A households file loaded as columns (see :class:`HouseholdTable`)."""

    households: HouseholdTable
    rejected: tuple[RejectedRow, ...]


def _is_geojson(path: Path) -> bool:
    return path.suffix.lower() in _GEOJSON_SUFFIXES


def iter_households_file(
    path: str | Path,
    progress: ProgressFn | None = None,
    every: int = 1000,
    *,
    extent: Extent | None = None,
    phones: PhoneRules | None = None,
    notes: list[RowNote] | None = None,
) -> Iterator[Household | RejectedRow]:
    """Yield each row of a households file (CSV, or GeoJSON by its suffix) as it is read.

    With the service area's ``extent``, rows outside it (or with lon and lat swapped) are
    rejected. ``phones`` reads national numbers; rows loaded with a change go to ``notes``."""
    validator = RowValidator(extent=extent, phones=phones, notes=notes)
    for _, item in _numbered_file(path, validator, progress, every):
        yield item


def _numbered_file(
    path: str | Path, validator: RowValidator, progress: ProgressFn | None, every: int
) -> Iterator[Numbered]:
    path = Path(path)
    total = path.stat().st_size
    rows = 0
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        if _is_geojson(path):
            chunks = iter(lambda: text.read(_CHUNK), "")
            stream = numbered_households_geojson(chunks, validator)
        else:
            stream = numbered_households_csv(text, validator)
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


def load_household_table(
    path: str | Path,
    progress: ProgressFn | None = None,
    *,
    extent: Extent | None = None,
    phones: PhoneRules | None = None,
) -> HouseholdTableLoad:
    """Load a households file into columns, in bounded memory (about 150 MB per million).

    Same rows and rejections as :func:`load_households`; a repeated ``account_id`` is found
    in one pass at the end rather than with a set of every id held during the read."""
    builder = HouseholdTableBuilder()
    numbers: list[int] = []
    bad: list[RejectedRow] = []
    where: Literal["line", "feature"] = "feature" if _is_geojson(Path(path)) else "line"
    for number, item in _numbered_file(
        path, RowValidator(check_repeats=False, extent=extent, phones=phones), progress, 1000
    ):
        if isinstance(item, Household):
            builder.add(item)
            numbers.append(number)
        else:
            bad.append(item)
    table = builder.build()
    line = np.array(numbers, np.int64)
    del numbers
    order = np.argsort(table.account_id, kind="stable")
    ids = table.account_id[order]
    repeat = np.zeros(len(table), np.bool_)
    repeat[order[1:][ids[1:] == ids[:-1]]] = True  # stable: the first in the file stays
    if repeat.any():
        at = np.flatnonzero(repeat)
        bad.extend(
            RejectedRow(where, int(n), str(a), "account_id appears earlier in the file")
            for n, a in zip(line[at].tolist(), table.account_id[at].tolist(), strict=True)
        )
        bad.sort(key=lambda r: r.number)
        table = table.take(np.flatnonzero(~repeat))
    return HouseholdTableLoad(table, tuple(bad))


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


def read_layers(
    folder: str | Path, crs: str | None = None, *, extent: Extent | None = None
) -> tuple[ZoneSet, list[tuple[str, RejectedRow]]]:
    """Every ``*.geojson``/``*.json`` in ``folder`` (or that one file) is a layer named by its stem.

    With the service area's ``extent``, zones outside it (or with lon/lat swapped) are rejected."""
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
                iter_features(iter(lambda: f.read(_CHUNK), "")), file.stem, crs, extent=extent
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
    ``max_distance_m`` is ``[area] service_distance_m``. The network is read first: its
    extent catches households and zones whose lon and lat are swapped. Households are held
    as columns (:class:`HouseholdTable`).
    """
    net = read_network(network, crs) if network else None
    extent = service_extent(net)
    loaded = load_household_table(households, progress, extent=extent)
    zones, zones_rejected = read_layers(layers, extent=extent) if layers else (ZoneSet.build([]), [])
    valve_list, valves_rejected = read_valves(valves, net) if valves and net else ([], [])
    report = LoadReport(loaded.rejected, tuple(valves_rejected), tuple(zones_rejected))
    return build_service_area(
        loaded.households, zones, net, valve_list, max_distance_m=max_distance_m, report=report
    )
