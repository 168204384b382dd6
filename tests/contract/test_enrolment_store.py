"""Self-enrolments in both stores: admission under the rate limits, counted tries, confirming
into the registry, removal of self-enrolled households only."""

from __future__ import annotations

import asyncio
import dataclasses

from incident.households.enrolment import Pending, household
from incident.households.model import Household, HouseholdSource
from incident.store import Store
from incident.store.ports import Enrolment, EnrolmentLimits

T0 = "2026-11-22T08:00:00.000000+00:00"
T1 = "2026-11-22T08:10:00.000000+00:00"
T2 = "2026-11-22T08:20:00.000000+00:00"
LATER = "2026-11-22T09:00:00.000000+00:00"
PENDING = Pending(address="1 Elm St", lon=-85.6, lat=38.04, language="en", phone="+15025550123",
                  channels=("sms",))  # fmt: skip


def enrolment(n: int, *, client: str = "c1", contact: str = "k1", at: str = T0) -> Enrolment:
    return Enrolment(
        enrolment_id=f"enr-{n}", client_key=client, contact_key=contact, pending=PENDING,
        code_digest=f"digest-{n}", expires_at=T1, created_at=at,
    )  # fmt: skip


def limits(since: str = T0, per_client: int = 3, per_contact: int = 2) -> EnrolmentLimits:
    return EnrolmentLimits(since=since, per_client=per_client, per_contact=per_contact)


async def test_admission_counts_per_client_and_per_contact(store: Store) -> None:
    assert (await store.admit_enrolment(enrolment(1), limits(), T0)).admitted
    assert (await store.admit_enrolment(enrolment(2, at=T1), limits(), T0)).admitted
    refused = await store.admit_enrolment(enrolment(3, contact="k2"), limits(per_client=2), T0)
    assert (refused.admitted, refused.limit, refused.oldest) == (False, "client", T0)
    refused = await store.admit_enrolment(enrolment(4, client="c2"), limits(), T0)
    assert (refused.admitted, refused.limit, refused.oldest) == (False, "contact", T0)
    assert await store.get_enrolment("enr-3") is None and await store.get_enrolment("enr-4") is None
    # Outside the window the old ones are not counted; older than purge_before they are gone.
    assert (await store.admit_enrolment(enrolment(5, client="c2", at=T2), limits(since=T1), T0)).admitted
    assert (await store.admit_enrolment(enrolment(6, client="c3", at=LATER), limits(since=T2), T1)).admitted
    assert await store.get_enrolment("enr-1") is None
    kept = await store.get_enrolment("enr-2")
    assert kept is not None and kept.pending == PENDING and kept.status == "pending" and kept.tries == 0


async def test_the_whole_service_has_a_cap_per_hour(store: Store) -> None:
    capped = EnrolmentLimits(since=T0, per_client=9, per_contact=9, per_hour=2, hour_since=T0)
    for n in range(2):
        assert (
            await store.admit_enrolment(enrolment(n, client=f"c{n}", contact=f"k{n}"), capped, T0)
        ).admitted
    refused = await store.admit_enrolment(enrolment(2, client="c2", contact="k2", at=T1), capped, T0)
    assert (refused.admitted, refused.limit, refused.oldest) == (False, "service", T0)
    assert await store.get_enrolment("enr-2") is None
    later = EnrolmentLimits(since=T1, per_client=9, per_contact=9, per_hour=2, hour_since=T1)
    assert (await store.admit_enrolment(enrolment(3, client="c3", contact="k3", at=T1), later, T0)).admitted
    answers = await asyncio.gather(
        *(store.admit_enrolment(enrolment(n, client=f"c{n}", contact=f"k{n}", at=T2), later, T0)
          for n in range(4, 10))
    )  # fmt: skip
    assert sum(a.admitted for a in answers) == 1


async def test_parallel_sign_ups_cannot_pass_the_limit(store: Store) -> None:
    answers = await asyncio.gather(
        *(store.admit_enrolment(enrolment(n, contact=f"k{n}"), limits(per_client=3), T0) for n in range(10))
    )
    assert sum(a.admitted for a in answers) == 3


async def test_tries_are_counted_until_the_limit_or_expiry(store: Store) -> None:
    await store.admit_enrolment(enrolment(1), limits(), T0)
    seen = [await store.try_enrolment("enr-1", T0, 3) for _ in range(4)]
    assert [e.tries if e else None for e in seen] == [1, 2, 3, None]
    await store.admit_enrolment(enrolment(2, client="c2", contact="k2"), limits(), T0)
    assert await store.try_enrolment("enr-2", T1, 3) is None  # expired at T1
    assert await store.try_enrolment("enr-9", T0, 3) is None
    parallel = await asyncio.gather(*(store.try_enrolment("enr-2", T0, 3) for _ in range(6)))
    assert sorted(e.tries for e in parallel if e) == [1, 2, 3]


async def test_confirming_adds_the_household_once(store: Store) -> None:
    await store.admit_enrolment(enrolment(1), limits(), T0)
    await store.admit_enrolment(enrolment(2, contact="k2"), limits(), T0)
    home = household(PENDING, "self-0001")
    assert await store.finish_enrolment("enr-1", home)
    assert not await store.finish_enrolment("enr-1", home)  # not pending any more
    assert await store.get_household("self-0001") == home
    done = await store.get_enrolment("enr-1")
    assert done is not None and done.status == "confirmed" and done.account_id == "self-0001"
    assert done.pending.phone == ""  # the number is in the registry now, not here as well
    assert await store.enrolled_household("k1") == "self-0001"
    assert await store.enrolled_household("k2") is None
    assert await store.finish_enrolment("enr-2", None)
    dead = await store.get_enrolment("enr-2")
    assert dead is not None and dead.status == "dead"
    assert await store.try_enrolment("enr-2", T0, 5) is None
    moved: Household = dataclasses.replace(home, language="zh-CN")
    await store.upsert_households([moved])
    assert await store.get_household("self-0001") == moved


async def test_confirmed_sign_ups_outlive_the_purge(store: Store) -> None:
    await store.admit_enrolment(enrolment(1), limits(), T0)
    await store.admit_enrolment(enrolment(2, contact="k2"), limits(), T0)
    await store.finish_enrolment("enr-1", household(PENDING, "self-0001"))
    assert (
        await store.admit_enrolment(enrolment(3, client="c3", contact="k3", at=LATER), limits(since=T2), T1)
    ).admitted
    assert await store.get_enrolment("enr-2") is None
    assert await store.enrolled_household("k1") == "self-0001"


async def test_only_self_enrolled_households_can_be_removed(store: Store) -> None:
    await store.admit_enrolment(enrolment(1), limits(), T0)
    await store.finish_enrolment("enr-1", household(PENDING, "self-0001"))
    await store.upsert_households(
        [dataclasses.replace(household(PENDING, "A00001"), source=HouseholdSource.file)]
    )
    assert not await store.remove_household("A00001")
    assert await store.remove_household("self-0001")
    assert not await store.remove_household("self-0001")
    assert await store.get_household("self-0001") is None and await store.get_household("A00001") is not None
    assert await store.enrolled_household("k1") is None  # removed: a new sign-up makes a new one


async def test_meta_default_is_decided_once(store: Store) -> None:
    first, second = await asyncio.gather(store.meta_default("k", "a"), store.meta_default("k", "b"))
    assert first == second and await store.meta_default("k", "c") == first


async def test_a_change_through_the_link_never_brings_a_removed_household_back(store: Store) -> None:
    await store.admit_enrolment(enrolment(1), limits(), T0)
    home = household(PENDING, "self-0001")
    await store.finish_enrolment("enr-1", home)
    moved: Household = dataclasses.replace(home, language="zh-CN")
    assert await store.update_self_household(moved)
    assert await store.get_household("self-0001") == moved
    assert await store.remove_household("self-0001")
    assert not await store.update_self_household(moved)  # removed in between: it stays removed
    assert await store.get_household("self-0001") is None
    billed = dataclasses.replace(home, account_id="ACC-1", source=HouseholdSource.file)
    await store.upsert_households([billed])
    assert not await store.update_self_household(
        dataclasses.replace(billed, source=HouseholdSource.self_enrolled)
    )
    assert await store.get_household("ACC-1") == billed  # the utility's own households are not changed


async def test_the_newest_confirmed_sign_up_of_a_household(store: Store) -> None:
    assert await store.current_enrolment("self-0001") is None
    await store.admit_enrolment(enrolment(1), limits(), T0)
    await store.admit_enrolment(enrolment(2, contact="k1"), limits(), T0)  # created at the same time
    await store.finish_enrolment("enr-1", household(PENDING, "self-0001"))
    assert await store.current_enrolment("self-0001") == "enr-1"
    assert await store.finish_enrolment("enr-2", household(PENDING, "self-0001"))
    assert await store.current_enrolment("self-0001") == "enr-2"  # the same contact signed up again
    older = await store.get_enrolment("enr-1")
    assert older is not None and older.status == "replaced"
    assert await store.enrolled_household("k1") == "self-0001"
    await store.admit_enrolment(enrolment(3, contact="k1", at=T2), limits(), T0)
    await store.finish_enrolment("enr-3", None)  # a dead one changes nothing
    assert await store.current_enrolment("self-0001") == "enr-2"
