"""The service area prebuilt once for many apps (the suite's): used only where it is the
app's own, and the same as the one the app would build."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from incident.app import PREBUILT, Prebuilt, create_app
from incident.intake.households import import_households
from incident.keys import SERVICE_AREA, TEMPLATES
from incident.settings import Settings
from incident.store import Store
from tests.support.app import AiohttpClient, Api, Client, serve
from tests.support.sample import BOX, rows_inside

HEADER = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"


def test_a_prebuilt_area_serves_only_apps_of_its_own_settings(
    settings: Settings, sample_area: Prebuilt
) -> None:
    assert sample_area.fits(settings)
    elsewhere = msgspec.structs.replace(
        settings, area=msgspec.structs.replace(settings.area, service_distance_m=5)
    )
    assert not sample_area.fits(elsewhere)
    with pytest.raises(ValueError, match="other"):
        create_app(elsewhere, prebuilt=sample_area)


async def test_an_app_on_the_prebuilt_area_answers_as_one_that_built_its_own(
    api: Api, settings: Settings, aiohttp_client: AiohttpClient, sample_area: Prebuilt, tmp_path: Path
) -> None:
    assert api.client.app[PREBUILT] is sample_area
    assert api.client.app[SERVICE_AREA].value is sample_area.area
    assert api.client.app[TEMPLATES] is sample_area.templates
    own_settings = msgspec.structs.replace(
        settings, store=msgspec.structs.replace(settings.store, url=f"sqlite:///{tmp_path / 'own.db'}")
    )
    own = Api(await aiohttp_client(create_app(own_settings)), api.tokens)  # builds everything itself
    assert PREBUILT not in own.client.app
    assert own.client.app[SERVICE_AREA].value is not sample_area.area
    counted = [(await a.declare(area=BOX))["households"] for a in (api, own)]
    assert counted == [len(rows_inside(BOX))] * 2


async def test_a_registry_that_is_more_than_the_households_file_gets_its_own_area(
    settings: Settings, store: Store, aiohttp_client: AiohttpClient, sample_area: Prebuilt, tmp_path: Path
) -> None:
    """Households imported before the app starts (from another file): the prebuilt area,
    made of the file alone, is not this registry's."""
    path = tmp_path / "more.csv"
    await asyncio.to_thread(path.write_text, HEADER + "EARLY-1,-85.55,38.03,1 New St,en,+15025550101,,,,\n")
    await import_households(store, path)
    client: Client = await serve(aiohttp_client, settings)
    area = client.app[SERVICE_AREA].value
    assert area is not sample_area.area
    assert "EARLY-1" in area.households.by_account
    assert len(area.households) == len(sample_area.area.households) + 1
