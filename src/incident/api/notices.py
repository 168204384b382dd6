"""Views of notices: preview one (nothing stored), plan one (audience counts and the exact
texts, nothing sent), plan a held or stale one again, approve it, and delivery progress."""

from __future__ import annotations

import msgspec
from aiohttp import web

from incident.api.endpoint import ALL_ROLES, Endpoint, Idempotency, Query, json_response, read_body
from incident.api.incidents import STEER
from incident.api.paging import CURSOR, LIMIT, cut, page_request
from incident.api.playbooks import check_etr_now
from incident.core.clock import Timestamp
from incident.deliveries.records import Delivery, Notice
from incident.keys import INCIDENTS, NOTICES, PRINCIPAL, SERVICE_AREA, SETTINGS, STORE
from incident.notices.service import NoticePreview, NoticeRequest, PlannedNotice


class NoticeList(msgspec.Struct, frozen=True):
    notices: list[Notice]


class DeliveryRow(msgspec.Struct, frozen=True):
    """A delivery as the API shows it: the address is masked (personal data)."""

    delivery_id: str
    notice_id: str
    account_id: str
    channel: str
    address: str
    language: str
    state: str
    attempts: int
    error_code: str | None
    updated_at: Timestamp


class Deliveries(msgspec.Struct, frozen=True):
    incident_id: str
    #: channel -> state -> count
    counts: dict[str, dict[str, int]]
    rows: list[DeliveryRow]
    #: The delivery id to pass as ``after`` for the next page (kept for older clients).
    next_after: str | None
    #: The cursor of the next page, as every paged list answers; None on the last.
    next_cursor: str | None = None


def mask(address: str) -> str:
    """Enough to recognise a number on the phone, not enough to call it."""
    return "…" + address[-4:] if len(address) > 4 else "…"


def _row(d: Delivery) -> DeliveryRow:
    return DeliveryRow(d.delivery_id, d.notice_id, d.account_id, d.channel, mask(d.address), d.language,
                       d.state.value, d.attempts, d.error_code, d.updated_at)  # fmt: skip


def _incident_id(request: web.Request) -> str:
    return request.match_info["incident_id"]


async def plan(request: web.Request) -> web.Response:
    body = await read_body(request, NoticeRequest)
    if body.facts.etr is not None:  # the same bounds as the incident's ETR
        check_etr_now(request, body.facts.etr)
    planned = await request.app[NOTICES].plan(
        _incident_id(request), body, request[PRINCIPAL], request.app[SERVICE_AREA].value,
        request.app[SETTINGS].area.isolation_buffer_m,
    )  # fmt: skip
    return json_response(planned, status=201)


async def preview(request: web.Request) -> web.Response:
    body = await read_body(request, NoticeRequest)
    found = await request.app[NOTICES].preview(
        _incident_id(request),
        body,
        request.app[SERVICE_AREA].value,
        request.app[SETTINGS].area.isolation_buffer_m,
    )
    return json_response(found)


async def replan(request: web.Request) -> web.Response:
    planned = await request.app[NOTICES].replan(
        _incident_id(request), request.match_info["notice_id"], request[PRINCIPAL],
        request.app[SERVICE_AREA].value, request.app[SETTINGS].area.isolation_buffer_m,
    )  # fmt: skip
    return json_response(planned, status=201)


async def list_notices(request: web.Request) -> web.Response:
    return json_response(NoticeList(await request.app[NOTICES].list_for(_incident_id(request))))


async def get_notice(request: web.Request) -> web.Response:
    return json_response(
        await request.app[NOTICES].get(_incident_id(request), request.match_info["notice_id"])
    )


async def approve(request: web.Request) -> web.Response:
    notice = await request.app[NOTICES].approve(
        _incident_id(request), request.match_info["notice_id"], request[PRINCIPAL]
    )
    return json_response(notice)


async def deliveries(request: web.Request) -> web.Response:
    incident_id = _incident_id(request)
    await request.app[INCIDENTS].get(incident_id)
    size, cursor = page_request(request, "deliveries", (str,))
    after = str(cursor[0]) if cursor is not None else request.query.get(_AFTER.name, "")
    store = request.app[STORE]
    rows = await store.list_deliveries(incident_id, after, size + 1)
    page, next_cursor = cut(rows, size, "deliveries", lambda d: (d.delivery_id,))
    next_after = page[-1].delivery_id if next_cursor else None
    counts = await store.delivery_counts(incident_id)
    return json_response(Deliveries(incident_id, counts, [_row(d) for d in page], next_after, next_cursor))


_AFTER = Query("after", "older form of cursor: the next_after of the previous page",
               {"type": "string", "maxLength": 200})  # fmt: skip


_N = "/api/incidents/{incident_id}/notices"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", _N + "/preview", preview, "What planning this notice would give: audience counts and"
             " the exact texts per channel and language; stores nothing (no notice, no timeline event)",
             STEER, tag="notices", body=NoticeRequest, response=NoticePreview),
    Endpoint("POST", _N, plan, "Plan a notice for the incident's area: audience counts and the exact texts"
             " (stored as previews); nothing is sent until it is approved. The incident's owner, command"
             " staff or an admin (403 not_owner otherwise); no public area text is 422 missing_facts",
             STEER, tag="notices", body=NoticeRequest, response=PlannedNotice, status=201,
             idempotent=Idempotency.incident),
    Endpoint("POST", _N + "/{notice_id}/replan", replan, "Plan a held or stale notice again with the"
             " incident's current area and facts; the old one becomes superseded", STEER, tag="notices",
             response=PlannedNotice, status=201, idempotent=Idempotency.incident),
    Endpoint("GET", _N, list_notices, "The incident's notices", ALL_ROLES, tag="notices",
             response=NoticeList),
    Endpoint("GET", _N + "/{notice_id}", get_notice, "One notice, with the exact texts that go out"
             " (previews) and whether it is stale", ALL_ROLES, tag="notices", response=Notice),
    Endpoint("POST", _N + "/{notice_id}/approve", approve, "Approve a planned notice for sending (the"
             " incident's owner, command staff or an admin; 409 notice_stale, notice_held; with [notify]"
             " approvals_required = 2 a live incident's notice goes at the second person's approval)",
             STEER, tag="notices", response=Notice, idempotent=Idempotency.incident),
    Endpoint("GET", "/api/incidents/{incident_id}/deliveries", deliveries,
             "Deliveries: counts by channel and status, and a page of rows (addresses masked)",
             ALL_ROLES, tag="notices", response=Deliveries, query=(LIMIT, CURSOR, _AFTER)),
)  # fmt: skip
