"""The store's port for notices: notices (their deliveries are :class:`.deliveries.DeliveryPort`'s)."""

from __future__ import annotations

from typing import Protocol

from incident.deliveries.records import Notice


class NoticePort(Protocol):
    """Notices (their deliveries are :class:`.deliveries.DeliveryPort`'s)."""

    async def get_notice(self, notice_id: str) -> Notice | None: ...

    async def list_notices(self, incident_id: str) -> list[Notice]: ...

    async def release_deliveries(self, notice_id: str, not_before: str | None) -> int:
        """An approved notice's draft deliveries become planned (to be sent after ``not_before``)."""
        ...

    async def pending_by_notice(self, incident_id: str) -> dict[str, tuple[int, str | None]]:
        """Per notice of the incident: deliveries not yet tried (planned, queued, sending) and
        the earliest ``not_before`` among them."""
        ...
