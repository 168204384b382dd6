"""The drill carrier's views: parse a request, ask the :class:`DrillCarrier`, answer JSON in
Twilio's shapes. The app, its auth middleware and its lifecycle are in ``drill``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
from aiohttp import web

from incident.carriersim.carrier import DrillCarrier
from incident.carriersim.records import CallRecord, MessageRecord
from incident.carriersim.wire import (
    API_VERSION,
    TwilioError,
    call_json,
    date_filter,
    error_body,
    message_json,
)

__all__ = [
    "ACCOUNT_PATH",
    "DRILL",
    "DRILL_SESSION",
    "create_call",
    "create_message",
    "drill_calls",
    "drill_fail_next",
    "drill_idle",
    "drill_inbound",
    "drill_messages",
    "drill_stats",
    "error_response",
    "get_call",
    "get_message",
    "json_response",
    "list_calls",
    "list_messages",
]

DRILL = web.AppKey("drill_carrier", DrillCarrier)
DRILL_SESSION = web.AppKey("drill_session", aiohttp.ClientSession)

ACCOUNT_PATH: Final = f"/{API_VERSION}/Accounts/{{account}}"
_DEFAULT_PAGE_SIZE: Final = 50
_MAX_PAGE_SIZE: Final = 1000


# -- responses --------------------------------------------------------------------------------


def json_response(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def error_response(err: TwilioError) -> web.Response:
    return json_response(error_body(err.status, err.code, err.message), err.status, err.headers)


# -- requests ---------------------------------------------------------------------------------


async def _form(request: web.Request) -> tuple[dict[str, str], list[str]]:
    """The posted form (a field given twice: the last) and every StatusCallbackEvent value."""
    pairs = parse_qsl((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs), [value for name, value in pairs if name == "StatusCallbackEvent"]


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise TwilioError(400, 20001, f"{name} must be an integer") from None
    return min(max(value, low), high)


def _dates(query: Mapping[str, str], name: str) -> list[Callable[[datetime], bool]]:
    """Predicates on a record's time for ``name``, ``name<`` (on or before), ``name>`` (on or after)."""
    tests: list[Callable[[datetime], bool]] = []
    for suffix in ("", "<", ">"):
        text = query.get(name + suffix)
        if not text:
            continue
        try:
            start, end = date_filter(text)
        except ValueError:
            raise TwilioError(400, 20001, f"{name}{suffix} is not a date: use YYYY-MM-DD") from None
        tests.append(_date_test(suffix, start, end))
    return tests


def _date_test(suffix: str, start: datetime, end: datetime) -> Callable[[datetime], bool]:
    """``<``: on or before; ``>``: on or after (a day, or a second); no suffix: on that day
    (Twilio documents these filters by day; the library sends datetimes to the second)."""
    if suffix == "<":
        return lambda at: at < end
    if suffix == ">":
        return lambda at: at >= start
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return lambda at: day <= at < day + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Paging:
    size: int
    page: int
    before_seq: int | None
    skip: int


def _paging(query: Mapping[str, str]) -> _Paging:
    size = _int(query, "PageSize", _DEFAULT_PAGE_SIZE, 1, _MAX_PAGE_SIZE)
    page = _int(query, "Page", 0, 0, 1_000_000)
    token = query.get("PageToken", "")
    before_seq = None
    if token:
        if not (token.startswith("PA") and token[2:].isdigit()):
            raise TwilioError(400, 20001, "PageToken is not valid")
        before_seq = int(token[2:])
    return _Paging(size, page, before_seq, 0 if before_seq is not None else page * size)


def _list_body(
    key: str,
    base: str,
    filters: list[tuple[str, str]],
    paging: _Paging,
    items: list[dict[str, Any]],
    next_after: int | None,
) -> dict[str, Any]:
    def uri(page: int, token: str | None = None) -> str:
        params = [*filters, ("PageSize", str(paging.size)), ("Page", str(page))]
        if token:
            params.append(("PageToken", token))
        return f"{base}?{urlencode(params)}"

    start = paging.page * paging.size
    return {
        key: items,
        "end": start + max(len(items) - 1, 0),
        "first_page_uri": uri(0),
        "next_page_uri": uri(paging.page + 1, f"PA{next_after}") if next_after is not None else None,
        "page": paging.page,
        "page_size": paging.size,
        "previous_page_uri": uri(paging.page - 1) if paging.page > 0 else None,
        "start": start,
        "uri": uri(paging.page, f"PA{paging.before_seq}" if paging.before_seq is not None else None),
    }


def _filters(query: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, query[name]) for name in names if query.get(name)]


# -- Twilio views -----------------------------------------------------------------------------


async def create_message(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    form, _ = await _form(request)
    record = carrier.create_message(form)
    return json_response(message_json(record, carrier.config.account_sid, record.created_mono), 201)


async def list_messages(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    query = request.query
    to, from_ = query.get("To"), query.get("From")
    dates = _dates(query, "DateSent")
    paging = _paging(query)
    mono = time.monotonic()

    def match(record: MessageRecord) -> bool:
        if (to and record.to != to) or (from_ and record.from_ != from_):
            return False
        if dates:
            at = record.sort_time(mono)
            return all(test(at) for test in dates)
        return True

    page = carrier.messages.page(match, paging.size, paging.before_seq, paging.skip)
    sid = carrier.config.account_sid
    return json_response(
        _list_body(
            "messages",
            f"/{API_VERSION}/Accounts/{sid}/Messages.json",
            _filters(query, ("To", "From", "DateSent", "DateSent<", "DateSent>")),
            paging,
            [message_json(record, sid, mono) for record in page.items],
            page.next_after,
        )
    )


async def get_message(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    record = carrier.messages.get(request.match_info["sid"])
    if record is None:
        raise web.HTTPNotFound
    return json_response(message_json(record, carrier.config.account_sid, time.monotonic()))


async def create_call(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    form, events = await _form(request)
    record = carrier.create_call(form, events)
    return json_response(call_json(record, carrier.config.account_sid, record.created_mono), 201)


async def list_calls(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    query = request.query
    to, from_, status = query.get("To"), query.get("From"), query.get("Status")
    dates = _dates(query, "StartTime")
    paging = _paging(query)
    mono = time.monotonic()

    def match(record: CallRecord) -> bool:
        if (to and record.to != to) or (from_ and record.from_ != from_):
            return False
        if status and record.status_at(mono) != status:
            return False
        if dates:
            at = record.sort_time(mono)
            return all(test(at) for test in dates)
        return True

    page = carrier.calls.page(match, paging.size, paging.before_seq, paging.skip)
    sid = carrier.config.account_sid
    return json_response(
        _list_body(
            "calls",
            f"/{API_VERSION}/Accounts/{sid}/Calls.json",
            _filters(query, ("To", "From", "Status", "StartTime", "StartTime<", "StartTime>")),
            paging,
            [call_json(record, sid, mono) for record in page.items],
            page.next_after,
        )
    )


async def get_call(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    record = carrier.calls.get(request.match_info["sid"])
    if record is None:
        raise web.HTTPNotFound
    return json_response(call_json(record, carrier.config.account_sid, time.monotonic()))


# -- inspection views -------------------------------------------------------------------------


async def drill_messages(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    to, mono, sid = request.query.get("to"), time.monotonic(), carrier.config.account_sid
    items = [
        {
            **message_json(record, sid, mono),
            "outcome": record.outcome,
            "status_callback": record.status_callback,
        }
        for record in carrier.messages
        if not to or record.to == to
    ]
    return json_response({"messages": items})


async def drill_calls(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    to, mono, sid = request.query.get("to"), time.monotonic(), carrier.config.account_sid
    items = [
        {
            **call_json(record, sid, mono),
            "outcome": record.outcome,
            "status_callback": record.status_callback,
            "gather_action": record.gather[0] if record.gather else None,
        }
        for record in carrier.calls
        if not to or record.to == to
    ]
    return json_response({"calls": items})


async def drill_stats(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    return json_response({**carrier.stats.as_json(), "callbacks_pending": carrier.callbacks_pending})


async def drill_idle(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    timeout = _int(request.query, "timeout", 10, 0, 600)
    try:
        async with asyncio.timeout(timeout):
            await carrier.wait_idle()
    except TimeoutError:
        return json_response({"idle": False, "callbacks_pending": carrier.callbacks_pending}, 504)
    return json_response({"idle": True, "callbacks_pending": 0})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise TwilioError(400, 20001, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise TwilioError(400, 20001, "the body must be a JSON object")
    return data


async def drill_inbound(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    data = await _json_body(request)
    fields = {name: data.get(name) for name in ("from", "to", "body", "url")}
    if not all(isinstance(fields[name], str) for name in ("from", "to", "body")):
        raise TwilioError(400, 20001, "from, to and body are required strings")
    url = fields["url"] if isinstance(fields["url"], str) else None
    try:
        result = await carrier.inbound_sms(str(fields["from"]), str(fields["to"]), str(fields["body"]), url)
    except ValueError as err:
        raise TwilioError(400, 20001, str(err)) from None
    except (aiohttp.ClientError, TimeoutError) as err:
        raise TwilioError(502, 11200, f"the inbound webhook failed: {type(err).__name__}") from None
    return json_response({"sid": result.sid, "status": result.status, "body": result.text})


async def drill_fail_next(request: web.Request) -> web.Response:
    carrier = request.app[DRILL]
    data = await _json_body(request)
    status, count = data.get("status"), data.get("count", 1)
    if not isinstance(status, int) or not isinstance(count, int) or count < 1:
        raise TwilioError(400, 20001, "status (429, 500 or 503) and count (>= 1) are integers")
    try:
        carrier.fail_next(status, count)
    except ValueError as err:
        raise TwilioError(400, 20001, str(err)) from None
    return web.Response(status=204)
