"""The household registry in both stores: upsert by account_id, paging, meta."""

from __future__ import annotations

import dataclasses

from incident.households.model import Channel, Household, Priority
from incident.store import Store


def household(n: int, **changes: object) -> Household:
    base = Household(
        account_id=f"A{n:05d}", lon=-85.6 + n / 1000, lat=38.04, address=f"{n} Elm St", language="en",
        sms=f"+1502555{n:04d}", voice="", app_token="", priority=Priority.medical if n % 7 == 0 else None,
        opt_out=frozenset({Channel.voice}) if n % 5 == 0 else frozenset(),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_import_then_reimport_updates_without_duplicates(store: Store) -> None:
    first = await store.upsert_households([household(n) for n in range(1, 101)])
    assert (first.added, first.updated, first.unchanged) == (100, 0, 0)
    changed = [household(n, language="zh-CN") if n <= 10 else household(n) for n in range(1, 121)]
    second = await store.upsert_households(changed)
    assert (second.added, second.updated, second.unchanged) == (20, 10, 90)
    assert await store.count_households() == 120
    page = await store.households_page("", 1000)
    assert [h.account_id for h in page] == [f"A{n:05d}" for n in range(1, 121)]
    assert page[0] == household(1, language="zh-CN")  # read back exactly as written
    assert page[6].priority == Priority.medical and page[4].opt_out == frozenset({Channel.voice})


async def test_keyset_paging_visits_every_household_once(store: Store) -> None:
    await store.upsert_households([household(n) for n in range(250)])
    seen: list[str] = []
    after = ""
    while page := await store.households_page(after, 64):
        seen += [h.account_id for h in page]
        after = page[-1].account_id
    assert seen == sorted({f"A{n:05d}" for n in range(250)})


async def test_meta_values(store: Store) -> None:
    assert await store.get_meta("households.source") is None
    await store.set_meta("households.source", "abc")
    await store.set_meta("households.source", "def")
    assert await store.get_meta("households.source") == "def"
