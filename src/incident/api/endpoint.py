"""Routes as data: each endpoint states its method, path, roles and body/response types.

The app registers routes from these, the auth middleware reads the roles from them and the
OpenAPI document is generated from them, so the three cannot drift apart.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from incident.core.domain import ONE_LINE_PATTERN, ONE_LINE_RULE, Role
from incident.core.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from incident.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Query:
    """A query parameter. Its schema is the rule: the OpenAPI document states it and
    :func:`check_query` enforces it on every request before the handler runs."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string", "maxLength": 200})
    repeated: bool = False
    required: bool = False
    #: What a value outside the schema raises (a 422 unless a route says otherwise).
    error: type[InvalidInput] = InvalidInput

    @classmethod
    def integer(cls, name: str, description: str, *, default: int, lo: int, hi: int) -> Query:
        schema = {"type": "integer", "minimum": lo, "maximum": hi, "default": default}
        return cls(name, f"{description} ({lo}-{hi}, default {default})", schema)

    @classmethod
    def number(
        cls, name: str, description: str, *, lo: float, hi: float, required: bool = False,
        error: type[InvalidInput] = InvalidInput,
    ) -> Query:  # fmt: skip
        schema = {"type": "number", "minimum": lo, "maximum": hi}
        return cls(name, f"{description} ({lo:g} to {hi:g})", schema, required=required, error=error)

    @classmethod
    def choice(cls, name: str, description: str, choices: Iterable[str], *, default: str) -> Query:
        return cls(name, description, {"type": "string", "enum": list(choices), "default": default})

    def check(self, raw: str) -> None:
        """Refuse ``raw`` unless it fits the schema (the subset of JSON Schema used here)."""
        s, what, error = self.schema, f"query parameter {self.name!r}", self.error
        if s.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise error(f"{what} must be a whole number, got {raw[:40]!r}") from None
            lo, hi = s.get("minimum"), s.get("maximum")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise error(f"{what} must be between {lo} and {hi}, got {value}")
            return
        if s.get("type") == "number":
            number = parse_number(raw)
            if number is None:
                raise error(f"{what} must be a decimal number such as 38.03, got {raw[:40]!r}")
            lo, hi = s.get("minimum"), s.get("maximum")
            if (lo is not None and number < lo) or (hi is not None and number > hi):
                raise error(f"{what} must be between {lo} and {hi}, got {raw[:40]}")
            return
        if "enum" in s and raw not in s["enum"]:
            choices = ", ".join(s["enum"])
            raise error(f"{self.name} must be one of: {choices} ({self.description}); got {raw[:40]!r}")
        if len(raw) < s.get("minLength", 0) or len(raw) > s.get("maxLength", len(raw)):
            raise error(f"{what} must be {s.get('minLength', 0)} to {s['maxLength']} characters")
        if "pattern" in s and re.search(s["pattern"], raw) is None:
            raise error(f"{what} has characters it cannot have")


#: A decimal number as a person types it: no "nan", "inf", "0x1p3" or "1_000" (which
#: ``float`` takes), and short.
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")


def parse_number(raw: str) -> float | None:
    """``raw`` as a finite float, or None when it is not a plain decimal number."""
    if len(raw) > 40 or _NUMBER.match(raw) is None:
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def check_query(endpoint: Endpoint, request: web.Request) -> None:
    """Every declared query parameter given fits its schema (so the document and the
    behaviour cannot disagree); parameters not declared are ignored."""
    for q in endpoint.query:
        values = request.query.getall(q.name, [])
        if not values and q.required:
            raise q.error(f"query parameter {q.name!r} is required: {q.description}")
        if len(values) > 1 and not q.repeated:
            raise q.error(f"query parameter {q.name!r} may be given once")
        for raw in values:
            q.check(raw)


class Idempotency(enum.Enum):
    """How a route takes ``Idempotency-Key`` (see :mod:`incident.api.idempotency`): what tells,
    after a 5xx, whether its write happened."""

    #: Every write of the route appends to the incident of its path (its last seq moves).
    incident = "incident"
    #: Like ``incident``, and the route writes once (one append): a store failure that says it
    #: wrote nothing (``store_unavailable``, not ``store_outcome_unknown``) proves it.
    one_append = "one_append"
    #: The route creates an incident (the year's incident counter moves).
    new_incident = "new_incident"
    #: The write refuses a repeat by itself (a report's triage status is checked): re-run it.
    refuses_repeat = "refuses_repeat"


#: Routes whose one write, refused cleanly by the store, left nothing behind: a retry may run.
ONE_WRITE = frozenset({Idempotency.one_append, Idempotency.new_incident, Idempotency.refuses_repeat})


#: Path parameters with a fixed form. A notice id is ``<incident id>-N<number>``, so
#: ``…/notices/preview`` is not also read as "the notice called preview" (whose GET would
#: then be advertised in a 405's ``Allow`` on a path where it can never succeed).
PATH_PATTERNS: dict[str, str] = {"notice_id": r"[^/]+-N[0-9]+", "alert_id": r"[A-Za-z0-9][A-Za-z0-9-]{0,99}"}

PATH_PARAM = re.compile(r"\{(\w+)\}")


def route_path(path: str) -> str:
    """The aiohttp route for a documented path: parameters with a fixed form get their regex."""
    return PATH_PARAM.sub(
        lambda m: f"{{{m[1]}:{PATH_PATTERNS[m[1]]}}}" if m[1] in PATH_PATTERNS else m[0], path
    )


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    #: Roles allowed; None means public (no token).
    roles: frozenset[Role] | None
    tag: str = "incidents"
    body: type[Any] | None = None
    response: type[Any] | None = None
    status: int = 200
    query: tuple[Query, ...] = ()
    #: The handler authenticates itself (the WebSocket takes its token in the first message).
    self_auth: bool = False
    #: Content type of the success response, when not JSON.
    content_type: str = "application/json"
    #: Other content types the success response may have (chosen by a query parameter).
    alternatives: tuple[str, ...] = ()
    #: Error statuses beyond those :meth:`error_statuses` derives from the route's shape.
    errors: tuple[int, ...] = ()
    #: Takes an ``Idempotency-Key`` header: every POST that creates or changes something.
    idempotent: Idempotency | None = None
    #: Reads or writes the store (so a store failure is a 503).
    uses_store: bool = True
    #: A cached representation: ETag, Last-Modified and Cache-Control on the answer, and a 304
    #: for a matching If-None-Match or If-Modified-Since.
    conditional: bool = False

    def error_statuses(self) -> tuple[int, ...]:
        """Every error status the route can answer, derived from what it takes, so a new
        route is described as it behaves without anyone listing them."""
        codes = set(self.errors)
        if self.roles is not None:
            codes |= {401, 403}  # no or unknown token; a role outside ``roles``
        if "{" in self.path:
            codes.add(404)  # nothing of that id
        if self.query:
            codes.add(422)  # a query parameter outside its schema
        if self.body is not None:
            codes |= {400, 413, 422}  # not JSON; too large; against the schema or a rule
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes |= {404, 409}  # a write can name what is not there, or meet a state that forbids it
        if self.idempotent is not None:
            codes |= {400, 409, 422}  # a malformed key; the key in use; the key with another body
        if self.uses_store:
            codes.add(503)
        return tuple(sorted(codes))


_encoder = msgspec.json.Encoder()


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(obj), status=status, content_type="application/json")


def _friendly(err: msgspec.ValidationError, type_: type[Any]) -> str:
    text = str(err)
    msg, sep, where = text.rpartition(" - at `$")
    if not sep:
        return text
    path = where.rstrip("`").lstrip(".")
    if msg == f"Expected `str` matching regex {ONE_LINE_PATTERN!r}":
        msg = f"text {ONE_LINE_RULE}"
    if msg.startswith("Invalid enum value") and path and "." not in path and "[" not in path:
        fields = {f.name: f.type for f in msgspec.structs.fields(type_)} if _is_struct(type_) else {}
        choices = _enum_values(fields.get(path))
        if choices:
            msg += f" (one of: {', '.join(choices)})"
    return f"{path}: {msg}" if path else msg


def _is_struct(type_: type[Any]) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


def _enum_values(tp: Any) -> list[str]:
    candidates = typing.get_args(tp) or (tp,)
    for c in candidates:
        if isinstance(c, type) and issubclass(c, enum.Enum):
            return [str(m.value) for m in c]
    return []


async def raw_body(request: web.Request, limit: int | None = None) -> bytes:
    """The request's bytes (read once; aiohttp keeps them for the next reader); ``limit``
    lowers ``[http] max_body_bytes`` for this route (the public ones take small bodies)."""
    if limit is not None and (request.content_length or 0) > limit:
        raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as err:
        most = request.app[SETTINGS].http.max_body_bytes
        raise PayloadTooLarge(f"request body is larger than the limit of {most} bytes") from err
    if limit is not None and len(raw) > limit:  # sent without a length (chunked)
        raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
    return raw


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(raw: bytes, limit: int) -> int:
    """How deep ``raw``'s arrays and objects nest, counted without recursion (the decoders
    recurse and a deep enough body raises RecursionError). Anything at most ``limit`` deep
    may be answered as ``limit``: only whether the limit is passed matters."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return limit
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=0))


async def read_body(request: web.Request, type_: type[T], *, limit: int | None = None) -> T:
    """Decode and validate a JSON body; every failure is a 4xx a person can act on."""
    raw = await raw_body(request, limit)
    if not raw.strip():
        raise MalformedRequest("request body is empty; send a JSON object", code="empty_body")
    limit = request.app[SETTINGS].http.max_json_depth
    if json_depth(raw, limit) > limit:
        raise MalformedRequest(f"request body nests deeper than {limit} levels", code="too_deep")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as err:
        raise InvalidInput(_friendly(err, type_)) from err
    except msgspec.DecodeError as err:
        raise MalformedRequest(f"request body is not valid JSON: {err}") from err
    except RecursionError as err:  # only with a limit set above what the decoder can take
        raise MalformedRequest(f"request body nests deeper than {limit} levels", code="too_deep") from err


def query_int(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter {name!r} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"query parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value
