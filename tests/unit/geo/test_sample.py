"""The committed sample service area loads cleanly and is what its README says."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pyproj
import pytest

import incident.geo as geo
from incident.geo import GeoError, area_from_zones
from incident.households import (
    count_by_language,
    count_by_priority,
    households_in_area,
    isolate_pipe,
    load_service_area,
    read_network,
)

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def service() -> geo.ServiceArea:
    return load_service_area(
        SAMPLE / "households.csv", SAMPLE / "layers", SAMPLE / "network.inp", SAMPLE / "valves.csv"
    )


def test_sample_loads_without_rejects(service: geo.ServiceArea) -> None:
    report = service.report
    assert report.households_rejected == () and report.valves_rejected == () and report.zones_rejected == ()
    assert len(service.households) >= 2000
    # Unattached households are reported, not dropped, and are a small minority.
    assert 0 < len(report.unattached) < len(service.households) * 0.03
    assert set(service.zones.layers()) == {"dmas", "pressure_zones"}


def test_sample_households_have_the_promised_mix(service: geo.ServiceArea) -> None:
    index = service.households
    languages = count_by_language(index, index.all())
    assert {"en", "zh-CN", "es"} <= set(languages)
    priorities = count_by_priority(index, index.all())
    assert all(priorities[p] > 0 for p in ("medical", "critical_facility", "vulnerable"))
    assert sum(1 for h in index.households if h.opt_out) > 50
    fiction = re.compile(r"\+1\d{3}5550[1]\d\d")
    numbers = [n for h in index.households for n in (h.sms, h.voice) if n]
    assert numbers and all(fiction.fullmatch(n) for n in numbers)


def test_sample_network_sits_around_the_contract_example(service: geo.ServiceArea) -> None:
    assert service.network is not None
    lon = np.array([n.lon for n in service.network.nodes])
    lat = np.array([n.lat for n in service.network.nodes])
    assert lon.min() < -85.61 < lon.max() and lat.min() < 38.04 < lat.max()
    assert lon.max() - lon.min() < 0.3 and lat.max() - lat.min() < 0.2


def test_sample_network_is_ky4_from_wntr(wntr_networks: Path) -> None:
    import wntr

    ours = read_network(SAMPLE / "network.inp")
    wn = wntr.network.WaterNetworkModel(str(wntr_networks / "ky4.inp"))
    assert {(k.id, k.start, k.end) for k in ours.links} == {
        (name, k.start_node_name, k.end_node_name) for name, k in wn.links()
    }
    to_lonlat = pyproj.Transformer.from_crs("EPSG:3089", "EPSG:4326", always_xy=True)
    for name, node in wn.nodes():
        mine = ours.node(name)
        assert (mine.lon, mine.lat) == pytest.approx(to_lonlat.transform(*node.coordinates), abs=1e-6)


def test_sample_files_are_what_the_generator_makes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "sample_generate", SAMPLE.parents[3] / "tools" / "generate_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path)]) == 0
    for name in ("households.csv", "valves.csv", "layers/dmas.geojson", "layers/pressure_zones.geojson"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def test_zone_and_isolation_queries_on_the_sample(service: geo.ServiceArea) -> None:
    area = area_from_zones(service.zones, ["PZ-01"])
    inside = households_in_area(service.households, area)
    assert 0 < len(inside) < len(service.households)
    iso = isolate_pipe(service, "P-100")
    assert iso.trace.valves_to_close and len(iso.households) > 0
    pipes = set(iso.trace.affected_links)
    attached = service.attachment
    assert attached is not None
    for i in iso.households.positions.tolist():
        assert attached.pipe[i] in pipes or attached.pipe[i] is None
    with pytest.raises(GeoError):
        isolate_pipe(service, "NO-SUCH-PIPE")


def test_public_surface() -> None:
    assert sorted(geo.__all__) == geo.__all__
    for name in geo.__all__:
        assert hasattr(geo, name), name
    assert issubclass(geo.UnknownReference, GeoError) and GeoError("x").code == "geo_error"
