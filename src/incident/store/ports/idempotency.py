"""The store's port for idempotency: idempotency keys of the HTTP API."""

from __future__ import annotations

from typing import Protocol

import msgspec


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An ``Idempotency-Key`` of one caller on one route, and the first answer to it."""

    #: Caller, method and path: the same key elsewhere is another key.
    scope: str
    key: str
    body_sha256: str
    #: pending (running) -> done (the answer is final) | unknown (a 5xx: the write may have happened).
    state: str = "pending"
    status: int | None = None
    #: The first answer's body (JSON text).
    response: str | None = None
    #: What the route's writes move, read before they ran (see incident.api.idempotency).
    guard: str | None = None
    created_at: str
    updated_at: str


class IdempotencyChange(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    updated_at: str
    status: int | None = None
    response: str | None = None
    guard: str | None = None


class IdempotencyPort(Protocol):
    """Idempotency keys of the HTTP API."""

    async def claim_idempotency_key(
        self, record: IdempotencyRecord, expired_before: str
    ) -> IdempotencyRecord | None:
        """Insert ``record`` (state ``pending``) unless one with its scope and key exists; None
        when inserted, else the existing one. A record created before ``expired_before`` has
        expired: it is removed first, so the key is new again."""
        ...

    async def update_idempotency_key(
        self, scope: str, key: str, expect_updated_at: str, change: IdempotencyChange
    ) -> bool:
        """Apply ``change`` if the record was last updated at ``expect_updated_at`` (False: it
        changed meanwhile, or is gone)."""
        ...

    async def get_idempotency_key(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    async def purge_idempotency_keys(self, created_before: str) -> int:
        """Remove records created before ``created_before``; returns how many."""
        ...
