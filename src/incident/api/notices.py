"""Views of notices: preview one (nothing stored), plan one (audience counts and the exact
texts, nothing sent), plan a held or stale one again, approve it, and delivery progress."""

from __future__ import annotations

import msgspec
from aiohttp import web

from incident.api.endpoint import ALL_ROLES, Endpoint, Idempotency, json_response, query_int, read_body
from incident.api.incidents import STEER
from incident.keys import INCIDENTS, NOTICES, PRINCIPAL, SERVICE_AREA, SETTINGS, STORE
from incident.notices import NoticePreview, NoticeRequest, PlannedNotice
from incident.notify.records import Delivery, Notice


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
    updated_at: str


class Deliveries(msgspec.Struct, frozen=True):
    incident_id: str
    #: channel -> state -> count
    counts: dict[str, dict[str, int]]
    rows: list[DeliveryRow]
    next_after: str | None


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
    planned = await request.app[NOTICES].plan(
        _incident_id(request), body, request[PRINCIPAL], request.app[SERVICE_AREA],
        request.app[SETTINGS].area.isolation_buffer_m,
    )  # fmt: skip
    return json_response(planned, status=201)


async def preview(request: web.Request) -> web.Response:
    body = await read_body(request, NoticeRequest)
    found = await request.app[NOTICES].preview(
        _incident_id(request), body, request.app[SERVICE_AREA], request.app[SETTINGS].area.isolation_buffer_m
    )
    return json_response(found)


async def replan(request: web.Request) -> web.Response:
    planned = await request.app[NOTICES].replan(
        _incident_id(request), request.match_info["notice_id"], request[PRINCIPAL], request.app[SERVICE_AREA],
        request.app[SETTINGS].area.isolation_buffer_m,
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
    limit = query_int(request, "limit", 100, lo=1, hi=1000)
    after = request.query.get("after", "")
    store = request.app[STORE]
    rows = await store.list_deliveries(incident_id, after, limit)
    next_after = rows[-1].delivery_id if len(rows) == limit else None
    return json_response(
        Deliveries(incident_id, await store.delivery_counts(incident_id), [_row(d) for d in rows], next_after)
    )


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
             "Deliveries: counts by channel and status, and rows (addresses masked; ?after=&limit= to page)",
             ALL_ROLES, tag="notices", response=Deliveries),
)  # fmt: skip
