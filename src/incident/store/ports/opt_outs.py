"""The store's port for opt-outs: opt-outs per address and channel."""

from __future__ import annotations

from typing import Protocol


class OptOutPort(Protocol):
    """Opt-outs per address and channel."""

    async def set_opt_out(self, address: str, channel: str, opted_out: bool, at: str) -> None:
        """Record that ``address`` opted out of (or back into) ``channel`` at ``at``; an older
        ``at`` than the one recorded changes nothing (replies may be processed out of order)."""
        ...

    async def opted_out_addresses(self, channel: str) -> set[str]:
        """Addresses that are opted out of ``channel`` by reply."""
        ...

    async def opt_out_state(self, address: str, channel: str) -> bool | None:
        """True/False when ``address`` opted out of / back into ``channel`` by reply; None when
        it never did (the households file's ``opt_out`` applies)."""
        ...
