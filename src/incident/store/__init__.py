"""Incident store: the truth of the service. See :mod:`incident.store.ports`."""

from __future__ import annotations

from incident.core.clock import Clock
from incident.settings import StoreSettings, sqlite_path
from incident.store.common import Backoff
from incident.store.ports import Appended, Decider, Opener, Store


def open_store(settings: StoreSettings, clock: Clock) -> Store:
    """The store for ``settings.url`` (not yet opened: call ``await store.open()``)."""
    backoff = Backoff(budget_s=settings.retry_budget_s)
    if settings.url.startswith("sqlite:///"):
        from incident.store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(settings.url), clock, backoff=backoff)
    from incident.store.postgres import PostgresStore

    return PostgresStore(settings.url, clock, settings.pool_size, backoff=backoff)


__all__ = ["Appended", "Decider", "Opener", "Store", "open_store"]
