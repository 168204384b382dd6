"""Cursor paging of the lists that grow: ``?limit=&cursor=``, answered with ``next_cursor``.

A cursor names the last row of the page it ends (its place in the list's stable order), so
rows that arrive while a client pages are neither repeated nor skipped: newest-first lists get
new rows at the top, behind the client. It is opaque to clients (base64url of a small JSON
array that starts with the list's name): a cursor of another list is refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
from aiohttp import web

from incident.api.endpoint import Query
from incident.core.errors import InvalidInput

T = TypeVar("T")
Key = tuple[str | int, ...]

#: The page size every paged list takes.
LIMIT = Query.integer("limit", "at most this many rows", default=100, lo=1, hi=1000)
CURSOR = Query(
    "cursor",
    "the next_cursor of the previous page: go on from there (opaque; absent: the first page)",
    {"type": "string", "minLength": 1, "maxLength": 400, "pattern": "^[A-Za-z0-9_-]+$"},
)


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


def encode_cursor(kind: str, key: Key) -> str:
    raw = msgspec.json.encode([kind, *key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(raw: str, kind: str, shape: tuple[type, ...]) -> Key:
    """The key ``raw`` names, if it is a cursor of the list ``kind`` of that ``shape``."""
    try:
        data = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        data = None
    if (
        not isinstance(data, list)
        or len(data) != len(shape) + 1
        or data[0] != kind
        or not all(type(v) is t for v, t in zip(data[1:], shape, strict=True))
    ):
        raise InvalidCursor("cursor is not one this list gave: pass next_cursor as it came, or none")
    return tuple(data[1:])


def page_request(
    request: web.Request, kind: str, shape: tuple[type, ...], limit: Query = LIMIT
) -> tuple[int, Key | None]:
    """The page size and where the page starts (None: the first page)."""
    size = int(request.query.get(limit.name, limit.schema["default"]))
    raw = request.query.get(CURSOR.name)
    return size, None if raw is None else decode_cursor(raw, kind, shape)


def pair(key: Key | None) -> tuple[str, str] | None:
    """A two-text key (time, id) as the store takes it."""
    return None if key is None else (str(key[0]), str(key[1]))


def cut(rows: Sequence[T], size: int, kind: str, key: Callable[[T], Key]) -> tuple[list[T], str | None]:
    """A page of ``rows`` (fetched ``size + 1``, to know whether more follow) and the cursor
    of the next page, None when this is the last."""
    page = list(rows[:size])
    more = len(rows) > size and page
    return page, encode_cursor(kind, key(page[-1])) if more else None
