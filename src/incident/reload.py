"""What the command line changes reaches the running service without a restart.

``incident tokens add`` rewrites ``[auth] tokens_file``; ``incident households import`` writes
the household registry in the store and a new ``households.version``. The service looks at
both every few seconds (``[auth] reload_s``, ``[area] reload_s``; a changed tokens file is
read once it has stayed the same for one look) and swaps in the new tokens or service area
whole: a request sees the old one or the new one, never a mix. A file
that cannot be read keeps the old tokens and says why, once per change of the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from incident.core.auth import TokenRegistry, read_tokens
from incident.core.errors import IncidentError
from incident.core.memory import release_free_memory
from incident.core.metrics import Metrics
from incident.households import ServiceArea
from incident.intake.households import AreaFiles, build_area, registry_version
from incident.notices.audience import prepare_address_keys
from incident.settings import AreaSettings
from incident.store import Store

log = logging.getLogger(__name__)


async def build_current_area(files: AreaFiles, settings: AreaSettings, store: Store) -> ServiceArea:
    """The service area of the registry (:func:`build_area`), with the integer address keys
    notice previews count audiences over made once, here (on a worker thread)."""
    area = await build_area(files, settings, store)
    await asyncio.to_thread(prepare_address_keys, area.households.households)
    return area


class CurrentArea:
    """The service area in use; the reloader replaces ``value`` in one assignment."""

    def __init__(self, value: ServiceArea, files: AreaFiles, version: str) -> None:
        self.value = value
        self.files = files
        #: The registry version ``value`` was built from.
        self.version = version


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is written or replaced (the CLI replaces it: a new inode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass
class TokenReloader:
    path: Path
    tokens: TokenRegistry
    metrics: Metrics
    stamp: tuple[int, int, int] | None = None
    #: A change seen at the last look, read once it has stayed the same for one more look:
    #: a file being written by hand is not read half-way (an empty file would revoke all).
    settling: tuple[int, int, int] | None = None

    async def check(self) -> None:
        """Read the tokens file again if it changed since the last look and has settled."""
        stamp = await asyncio.to_thread(file_stamp, self.path)
        if stamp == self.stamp:
            self.settling = None
            return
        if stamp != self.settling:
            self.settling = stamp
            return
        self.stamp, self.settling = stamp, None  # a bad file is reported once, not every look
        try:
            tokens = await asyncio.to_thread(read_tokens, self.path)
        except IncidentError as err:
            self.metrics.reloads.labels("tokens", "failed").inc()
            log.warning("tokens file not reloaded, the previous tokens stay in force: %s", err.message)
            return
        self.tokens.replace(tokens)
        self.metrics.reloads.labels("tokens", "ok").inc()
        log.info("tokens reloaded from %s: %d tokens", self.path, len(self.tokens))


@dataclass
class AreaReloader:
    settings: AreaSettings
    store: Store
    current: CurrentArea
    metrics: Metrics

    async def check(self) -> None:
        """Rebuild the service area if an import changed the registry since the last build."""
        version = await registry_version(self.store)
        if version == self.current.version:
            return
        try:
            # The version is read before the registry: an import during the build is seen
            # at the next look.
            area = await build_current_area(self.current.files, self.settings, self.store)
        except IncidentError as err:
            self.metrics.reloads.labels("households", "failed").inc()
            log.warning("service area not rebuilt, the previous one stays in use: %s", err.message)
            return
        self.current.value, self.current.version = area, version
        self.metrics.reloads.labels("households", "ok").inc()
        log.info("households reloaded from the registry: %d households", len(area.households))
        await asyncio.to_thread(release_free_memory)


async def poll(every_s: float, check: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``check`` every ``every_s`` seconds until cancelled; a failure is logged and the
    next look tries again (a store hiccup must not end the watching)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await check()
        except IncidentError as err:
            log.warning("%s: reload check failed (tried again in %g s): %s", what, every_s, err.message)
        except OSError as err:
            log.warning("%s: reload check failed (tried again in %g s): %s", what, every_s, err)
