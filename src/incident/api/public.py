"""The residents' side, without a token: the public page ``/public/`` and its read API.

Everything here faces the internet. Inputs are checked before anything runs (numbers must be
plain decimals in range; a bad one is 400), each client address has a budget of requests per
minute (``[public] requests_per_minute``, 429 beyond it), and the answers come from the open
public incidents alone (:mod:`incident.notices.public`): "is my address affected?" looks at
the incidents' areas, never at the household registry, so no answer tells whether anybody
lives at a point. Every ``/public`` response carries a strict Content-Security-Policy (no
inline script), ``X-Content-Type-Options`` and ``Referrer-Policy``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from incident.api.console import STATIC
from incident.api.endpoint import Endpoint, Query, parse_number
from incident.core.clock import Timestamp
from incident.core.domain import Kind, Status, Utility
from incident.core.errors import BadQuery, NotFound, RateLimited
from incident.keys import PUBLIC, PUBLIC_API, SERVICE_AREA, SETTINGS, TEMPLATES
from incident.notices.language import match_language
from incident.notices.public import Answer, PointCheck, PublicIncident

#: The page's files (``src/incident/console/static/public``).
PAGE = STATIC / "public"

#: For every /public response (a route may set its own before it is sent).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the strict headers on every /public response, errors too."""
    if request.path == "/public" or request.path.startswith("/public/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)


# --- a budget of requests per client address ---------------------------------------------------


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> IPAddress | None:
    """The address in ``text``: bare, ``[v6]``, ``v4:port`` or ``[v6]:port`` (as proxies write
    X-Forwarded-For hops), with any zone id dropped; IPv4 written as IPv6 is IPv4."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_bucket(client: str) -> str:
    """What one budget is counted for: an IPv4 address, an IPv6 /64 (one household's
    network: its addresses are free to choose), else the text as it is."""
    ip = _ip(client)
    if ip is None:
        return client
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class ClientLimiter:
    """Fixed one-minute windows per client (IPv6 by its /64): a dict lookup per request. When
    it holds ``max_clients`` clients, the windows already over are dropped, then those not at
    their limit; a client at its limit is never dropped (a flood of addresses must neither grow
    memory without bound nor give a blocked client a new budget). Still full: a new client
    waits (the table is looked over at most once a second)."""

    def __init__(
        self, per_minute: int, *, max_clients: int = 100_000, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._max = max_clients
        self._now = now
        self._windows: dict[str, tuple[float, int]] = {}
        self._pruned = -math.inf

    def wait_s(self, client: str) -> float:
        """0 when ``client`` may go on (the request is counted), else seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        now = self._now()
        client = client_bucket(client)
        start, count = self._windows.get(client, (now, 0))
        if now - start >= 60.0:
            start, count = now, 0
        if count >= self.per_minute:
            return max(60.0 - (now - start), 1.0)
        if client not in self._windows and len(self._windows) >= self._max and not self._make_room(now):
            return 1.0
        self._windows[client] = (start, count + 1)
        return 0.0

    def _make_room(self, now: float) -> bool:
        if now - self._pruned >= 1.0:
            self._pruned = now
            current = {c: w for c, w in self._windows.items() if now - w[0] < 60.0}
            if len(current) >= self._max:
                current = {c: w for c, w in current.items() if w[1] >= self.per_minute}
            self._windows = current
        return len(self._windows) < self._max


def trusted_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """``[public] trusted_proxies`` as networks (an address is a network of one); ValueError
    naming an entry that is neither."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ValueError(f"trusted_proxies: {entry!r} is not an address or network") from None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:10.0.0.1 names the IPv4 address
                network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
        networks.append(network)
    return tuple(networks)


def _trusted(ip: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in trusted)


def client_address(remote: str | None, forwarded_for: Sequence[str], trusted: tuple[IPNetwork, ...]) -> str:
    """Who is asking: the peer, or, when the peer is in one of our ``trusted`` proxy networks,
    the nearest address in ``X-Forwarded-For`` that is not (a client can prepend anything, so
    only what our own proxies appended counts). Ports and brackets are dropped; a hop that is
    no address is ``unknown``."""
    peer = remote or "unknown"
    if not _trusted(_ip(peer), trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops[-20:]):
        ip = _ip(hop)
        if not _trusted(ip, trusted):
            return str(ip) if ip is not None else "unknown"
    return str(_ip(peer))


class PublicApi:
    """What the public views keep: the rate budget, the trusted proxies, and the list answers
    already encoded (one per language, for as long as the public view returns the same list)."""

    def __init__(
        self, limiter: ClientLimiter, trusted_proxies: Sequence[str] = (), *, link_writes: int = 10
    ) -> None:
        self.limiter = limiter
        self.trusted = trusted_networks(trusted_proxies)
        #: Changes and removals per signed link (``/public/api/households/self``), any client.
        self.links = ClientLimiter(link_writes, max_clients=10_000)
        self.encoded: dict[str, tuple[object, bytes, str]] = {}


def _client(request: web.Request) -> str:
    trusted = request.app[PUBLIC_API].trusted
    return client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)


def spend(request: web.Request) -> None:
    """Count the request against its client's budget; :class:`RateLimited` beyond it."""
    wait = request.app[PUBLIC_API].limiter.wait_s(_client(request))
    if wait:
        seconds = math.ceil(wait)
        message = f"too many requests from this address: try again in {seconds} s"
        raise RateLimited(message, retry_after=seconds)


# --- what residents are shown ------------------------------------------------------------------


class PublicAdvice(msgspec.Struct, frozen=True, kw_only=True):
    """The text of the last notice households were sent, in the language asked for."""

    template: str
    language: str
    text: str
    at: Timestamp | None


class PublicIncidentOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: Kind
    utility: Utility
    status: Status
    #: The affected area: GeoJSON Polygon or MultiPolygon in lon/lat, or null until drawn.
    area: dict[str, Any] | None
    #: Where, in words residents know, in the language asked for (or the default one).
    area_description: str | None
    etr: Timestamp | None
    start: Timestamp | None
    end: Timestamp | None
    households: int | None
    declared_at: Timestamp
    updated_at: Timestamp
    advice: PublicAdvice | None


class PublicIncidentList(msgspec.Struct, frozen=True, kw_only=True):
    language: str
    languages: list[str]
    #: A point this many metres or less outside an area is "near".
    near_m: float
    #: The service area's box ``[west, south, east, north]`` (lon/lat), to frame a map.
    bounds: list[float] | None
    incidents: list[PublicIncidentOut]


class PublicCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: Kind
    utility: Utility
    status: Status
    area_description: str | None
    etr: Timestamp | None
    answer: Answer
    #: Metres from the area's edge (0 inside); null when far beyond ``near_m``.
    distance_m: float | None
    advice: PublicAdvice | None


class PublicCheck(msgspec.Struct, frozen=True, kw_only=True):
    lon: float
    lat: float
    language: str
    near_m: float
    #: ``affected`` if the point is inside any open public incident's area, else ``near`` if
    #: within ``near_m`` of one, else ``not_affected``.
    answer: Answer
    results: list[PublicCheckResult]


def _pick(texts: dict[str, str], language: str, default: str) -> tuple[str, str] | None:
    for tag in (language, default):
        if tag in texts:
            return tag, texts[tag]
    return next(iter(sorted(texts.items())), None)


def _advice(incident: PublicIncident, language: str, default: str) -> PublicAdvice | None:
    if incident.advice is None:
        return None
    picked = _pick(incident.advice.text, language, default)
    if picked is None:
        return None
    tag, text = picked
    return PublicAdvice(template=incident.advice.template, language=tag, text=text, at=incident.advice.at)


def _description(incident: PublicIncident, language: str, default: str) -> str | None:
    picked = _pick(incident.area_description, language, default)
    return picked[1] if picked else None


def shown(incident: PublicIncident, language: str, default: str) -> PublicIncidentOut:
    return PublicIncidentOut(
        id=incident.id, kind=incident.kind, utility=incident.utility, status=incident.status,
        area=incident.area, area_description=_description(incident, language, default),
        etr=incident.etr, start=incident.start, end=incident.end, households=incident.households,
        declared_at=incident.declared_at, updated_at=incident.updated_at,
        advice=_advice(incident, language, default),
    )  # fmt: skip


def checked(check: PointCheck, language: str, default: str) -> PublicCheckResult:
    i = check.incident
    return PublicCheckResult(
        id=i.id, kind=i.kind, utility=i.utility, status=i.status,
        area_description=_description(i, language, default), etr=i.etr, answer=check.answer,
        distance_m=check.distance_m, advice=_advice(i, language, default),
    )  # fmt: skip


def overall(checks: Sequence[PointCheck]) -> Answer:
    answers = {c.answer for c in checks}
    for answer in (Answer.affected, Answer.near):
        if answer in answers:
            return answer
    return Answer.not_affected


def accepted_languages(header: str) -> list[str]:
    """The tags of an ``Accept-Language`` header, most wanted first (at most 20 looked at)."""
    tags: list[tuple[float, int, str]] = []
    for n, part in enumerate(header[:500].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            q = parse_number(params.strip()[2:]) or 0.0
        if tag and tag != "*" and q > 0:
            tags.append((-q, n, tag))
    return [tag for _, _, tag in sorted(tags)]


def language_of(request: web.Request) -> tuple[str, str, list[str]]:
    """The language to answer in: ``?lang=``, else the browser's Accept-Language, else the
    default; and the default and every language the notices have."""
    templates = request.app[TEMPLATES]
    available = sorted(templates.languages)
    default = templates.default_language
    asked = request.query.get("lang")
    wanted = [asked] if asked else accepted_languages(request.headers.get("Accept-Language", ""))
    for tag in wanted:
        found = match_language(tag, available)
        if found is not None:
            return found, default, available
    return default, default, available


def _json(request: web.Request, body: bytes, cache_control: str, etag: str | None = None) -> web.Response:
    headers = {"Cache-Control": cache_control, "Vary": "Accept-Language"}
    if etag is not None:
        headers["ETag"] = etag
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
    response = web.Response(body=body, content_type="application/json", headers=headers)
    if len(body) > 1024:
        response.enable_compression()
    return response


async def public_incidents(request: web.Request) -> web.Response:
    spend(request)
    settings = request.app[SETTINGS].public
    language, default, available = language_of(request)
    incidents = await request.app[PUBLIC].incidents()
    memo = request.app[PUBLIC_API].encoded
    found = memo.get(language)
    if found is None or found[0] is not incidents:
        extent = request.app[SERVICE_AREA].value.extent
        bounds = [extent.west, extent.south, extent.east, extent.north] if extent else None
        body = msgspec.json.encode(
            PublicIncidentList(
                language=language, languages=available, near_m=settings.near_m, bounds=bounds,
                incidents=[shown(i, language, default) for i in incidents],
            )
        )  # fmt: skip
        found = memo[language] = (incidents, body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    max_age = max(1, math.ceil(settings.cache_s))
    return _json(request, found[1], f"public, max-age={max_age}", found[2])


async def public_check(request: web.Request) -> web.Response:
    spend(request)
    # The middleware checked both against their schemas: present, plain decimals, in range.
    lon = parse_number(request.query["lon"])
    lat = parse_number(request.query["lat"])
    if lon is None or lat is None:  # pragma: no cover - refused before the handler runs
        raise BadQuery("lon and lat must be decimal numbers")
    near_m = request.app[SETTINGS].public.near_m
    language, default, _ = language_of(request)
    checks = await request.app[PUBLIC].check(lon, lat, near_m)
    body = PublicCheck(
        lon=lon, lat=lat, language=language, near_m=near_m, answer=overall(checks),
        results=[checked(c, language, default) for c in checks],
    )  # fmt: skip
    # A point may be somebody's home: no cache keeps it.
    return _json(request, msgspec.json.encode(body), "no-store")


# --- the page ----------------------------------------------------------------------------------

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_FILES = frozenset({"public.js", "public.css", "i18n.js", "map.js"})


def _read(name: str) -> bytes | None:
    try:
        path = PAGE / name
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


async def _page_file(request: web.Request, name: str) -> web.Response:
    content_type = _TYPES.get("." + name.rpartition(".")[2])
    body = await asyncio.to_thread(_read, name) if content_type else None
    if body is None or content_type is None:
        raise NotFound(f"no file {name} on the public page")
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)
    if len(body) > 1024:
        response.enable_compression()
    return response


async def page(request: web.Request) -> web.Response:
    return await _page_file(request, "index.html")


async def page_file(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name not in _FILES:
        raise NotFound(f"no file {name[:60]} on the public page")
    return await _page_file(request, name)


_LANG = Query(
    "lang",
    "the language of texts (a BCP 47 tag such as en or zh-CN; default: the browser's Accept-Language)",
    {"type": "string", "minLength": 1, "maxLength": 35, "pattern": "^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8}){0,4}$"},
    error=BadQuery,
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/public/", page, "The residents' page: open public incidents on a map, and "
             "\"is my address affected?\" (no token)", None, tag="public", content_type="text/html",
             errors=(404,), uses_store=False),
    Endpoint("GET", "/public/static/{file}", page_file, "A file of the residents' page (script, styles)",
             None, tag="public", content_type="*/*", errors=(404,), uses_store=False),
    Endpoint("GET", "/public/api/incidents", public_incidents,
             "The open public incidents as residents see them: kind, status, area (GeoJSON, lon/lat), "
             "the area in words, ETR, households affected, the last notice's text (no token; never a "
             "drill or an internal incident; ETag, cached briefly)", None, tag="public",
             response=PublicIncidentList, query=(_LANG,), errors=(400, 429)),
    Endpoint("GET", "/public/api/check", public_check,
             "Is this point affected? For each open public incident: affected (inside its area), near "
             "(within [public] near_m) or not_affected, with its advice. Answered from the incidents' "
             "areas only, never from the household registry (no token; not cached)", None,
             tag="public", response=PublicCheck, errors=(400, 429),
             query=(Query.number("lon", "longitude of the point, WGS 84", lo=-180, hi=180, required=True,
                                 error=BadQuery),
                    Query.number("lat", "latitude of the point, WGS 84", lo=-90, hi=90, required=True,
                                 error=BadQuery),
                    _LANG)),
)  # fmt: skip
