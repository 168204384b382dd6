"""The store's port for self-enrolments: sign-ups waiting for their code, the counts the
rate limits need (right across instances: they are counted here), and the self-enrolled
households they become."""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from incident.households.enrolment import Pending
from incident.households.model import Household

#: ``replaced``: confirmed, then a newer sign-up of the same household was (its link ends).
EnrolmentStatus = Literal["pending", "confirmed", "dead", "replaced"]


class Enrolment(msgspec.Struct, frozen=True, kw_only=True):
    enrolment_id: str
    #: Keyed hashes of the client's address and of the contact the code went to.
    client_key: str
    contact_key: str
    pending: Pending
    code_digest: str
    expires_at: str
    tries: int = 0
    status: EnrolmentStatus = "pending"
    created_at: str
    #: The household a confirmed sign-up became.
    account_id: str | None = None

    def __repr__(self) -> str:
        return f"Enrolment({self.enrolment_id!r}, status={self.status}, tries={self.tries})"


class EnrolmentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``per_client`` sign-ups from one client and ``per_contact`` to one contact
    created at or after ``since``, and at most ``per_hour`` in all (every client and contact)
    created at or after ``hour_since`` (0: no such limit)."""

    since: str
    per_client: int
    per_contact: int
    per_hour: int = 0
    hour_since: str = ""


class Admission(msgspec.Struct, frozen=True, kw_only=True):
    admitted: bool
    #: When refused: which limit, and the oldest sign-up it counted (it leaves the window first).
    limit: Literal["client", "contact", "service"] | None = None
    oldest: str | None = None


class EnrolmentPort(Protocol):
    async def meta_default(self, key: str, value: str) -> str:
        """The meta value of ``key``, set to ``value`` first when there is none (the first
        instance to ask decides; all see the same)."""
        ...

    async def admit_enrolment(
        self, enrolment: Enrolment, limits: EnrolmentLimits, purge_before: str
    ) -> Admission:
        """Count the sign-ups of the same client and contact since ``limits.since`` (and all
        since ``limits.hour_since``) and add ``enrolment`` only when each is under its limit,
        in one transaction (two instances cannot both take the last place). Sign-ups created
        before ``purge_before`` go, but for confirmed ones (keyed hashes only by then: they find
        a contact's household again)."""
        ...

    async def get_enrolment(self, enrolment_id: str) -> Enrolment | None: ...

    async def try_enrolment(self, enrolment_id: str, now: str, max_tries: int) -> Enrolment | None:
        """Count one try of a pending, unexpired sign-up with fewer than ``max_tries`` tries
        and answer it as it is after the count; None when there is no such sign-up. Every
        guess is counted before it is compared, so parallel guesses get no extra tries."""
        ...

    async def finish_enrolment(self, enrolment_id: str, household: Household | None) -> bool:
        """A pending sign-up becomes confirmed, with ``household`` added to (or updated in)
        the registry in the same transaction, or dead (``household`` None). Its pending data
        is cleared either way. A confirmed one replaces the household's older confirmed ones
        (status ``replaced``: their links end). False when it was not pending."""
        ...

    async def enrolled_household(self, contact_key: str) -> str | None:
        """The account id of the self-enrolled household still in the registry that the
        newest confirmed sign-up of this contact became, if any."""
        ...

    async def current_enrolment(self, account_id: str) -> str | None:
        """The id of the confirmed sign-up that last made (or updated) this household, if any:
        the one whose link works."""
        ...

    async def get_household(self, account_id: str) -> Household | None: ...

    async def update_self_household(self, household: Household) -> bool:
        """Write a self-enrolled household that is still in the registry as one (source
        ``self``); False, and nothing written, when it is not (removed meanwhile)."""
        ...

    async def remove_household(self, account_id: str) -> bool:
        """Remove a self-enrolled household (source ``self`` only); False when none."""
        ...
