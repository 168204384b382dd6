"""The store's port for households: the household registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from incident.households.model import Household


class HouseholdUpsert(msgspec.Struct, frozen=True):
    added: int
    updated: int
    unchanged: int
    #: File rows not applied: the stored household signed itself up (source ``self``).
    kept: int = 0


class HouseholdPort(Protocol):
    """The household registry."""

    async def upsert_households(self, households: Sequence[Household]) -> HouseholdUpsert:
        """Add new households and update changed ones, by ``account_id``. A household whose
        stored source is ``self`` is only ever replaced by another ``self`` one: file rows
        for it are skipped (counted as ``kept``)."""
        ...

    async def households_page(self, after: str, limit: int) -> list[Household]:
        """Households ordered by ``account_id``, after ``after`` (keyset paging)."""
        ...

    async def count_households(self) -> int: ...
