"""The household registry in both stores: upsert by account_id, paging, meta."""

from __future__ import annotations

import dataclasses

from incident.households.model import Channel, Household, HouseholdSource, Need, Priority
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


async def test_new_fields_are_read_back_as_written(store: Store) -> None:
    rich = household(
        1, email="jo@example.org", needs=frozenset({Need.deaf_or_hard_of_hearing, Need.medical_equipment}),
        source=HouseholdSource.self_enrolled, priority=Priority.medical, priority_confirmed=False,
        opt_out=frozenset({Channel.email, Channel.sms}),
    )  # fmt: skip
    await store.upsert_households([rich, household(2)])
    assert await store.households_page("", 10) == [rich, household(2)]
    confirmed = dataclasses.replace(rich, priority_confirmed=True)
    counts = await store.upsert_households([confirmed])
    assert (counts.added, counts.updated, counts.unchanged, counts.kept) == (0, 1, 0, 0)
    assert (await store.households_page("", 1))[0].priority_confirmed is True


async def test_file_rows_never_overwrite_a_self_enrolled_household(store: Store) -> None:
    mine = household(3, source=HouseholdSource.self_enrolled, email="me@example.org", language="zh-CN")
    await store.upsert_households([household(1), mine])
    billing = [household(1, address="1 Oak St"), household(3, address="3 Billing Rd"), household(4)]
    counts = await store.upsert_households(billing)
    assert (counts.added, counts.updated, counts.unchanged, counts.kept) == (1, 1, 0, 1)
    page = await store.households_page("", 10)
    assert [h.account_id for h in page] == ["A00001", "A00003", "A00004"]
    assert page[1] == mine and page[0].address == "1 Oak St"
    # Re-running the same import changes nothing and still leaves the resident's row alone.
    again = await store.upsert_households(billing)
    assert (again.added, again.updated, again.unchanged, again.kept) == (0, 0, 2, 1)
    # The resident's own change goes through.
    moved = dataclasses.replace(mine, address="9 New St")
    assert (await store.upsert_households([moved])).updated == 1
    assert (await store.households_page("A00002", 1))[0] == moved


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
