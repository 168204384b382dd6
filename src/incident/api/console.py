"""The web console: one page, its ES modules and stylesheet, and vendored libraries.

The files hold no data, so they are public; every API call the console makes carries the
bearer token it was signed in with. Nothing is fetched from anywhere else: the zones and
pipes are the base map, and map tiles are drawn only when ``[console] tile_url`` names some.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from incident.api.endpoint import Endpoint
from incident.core.errors import NotFound
from incident.keys import SETTINGS

#: The console's files (``src/incident/console/static``).
STATIC = Path(__file__).resolve().parent.parent / "console" / "static"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".map": "application/json",
    "": "text/plain",  # LICENSE files
    ".txt": "text/plain",
    ".md": "text/plain",
}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


async def _file(request: web.Request, *parts: str) -> web.Response:
    if not all(_NAME.match(p) for p in parts):
        raise NotFound(f"no console file {'/'.join(parts)}")
    path = STATIC.joinpath(*parts)
    content_type = _TYPES.get(path.suffix)
    body = await asyncio.to_thread(_read, path) if content_type else None
    if body is None or content_type is None:
        raise NotFound(f"no console file {'/'.join(parts)}")
    return cached(request, body, content_type)


def cached(request: web.Request, body: bytes, content_type: str) -> web.Response:
    """Revalidated on every load (an upgrade shows at once), answered 304 when unchanged."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if content_type.startswith("text/") or content_type.endswith("+xml") else None
    response = web.Response(body=body, content_type=content_type, charset=charset, headers=headers)
    if len(body) > 1024 and content_type != "image/png":
        response.enable_compression()
    return response


def _policy(request: web.Request, tile_url: str) -> str:
    """Only this service's own files and API (and the tile server, when one is set)."""
    tiles = ""
    if tile_url:
        parts = urlsplit(tile_url)  # a {s} subdomain placeholder becomes a wildcard
        tiles = f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    ws = f"ws://{request.host} wss://{request.host}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; connect-src 'self' {ws}; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


async def index(request: web.Request) -> web.Response:
    console = request.app[SETTINGS].console
    page = await asyncio.to_thread(_read, STATIC / "index.html")
    if page is None:
        raise NotFound("the console is not installed (src/incident/console/static/index.html)")
    text = (
        page.decode()
        .replace("__TILE_URL__", html.escape(console.tile_url, quote=True))
        .replace("__TILE_ATTRIBUTION__", html.escape(console.tile_attribution, quote=True))
    )
    response = cached(request, text.encode(), "text/html")
    response.headers["Content-Security-Policy"] = _policy(request, console.tile_url)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def console_file(request: web.Request) -> web.Response:
    return await _file(request, request.match_info["file"])


async def vendor_file(request: web.Request) -> web.Response:
    return await _file(request, "vendor", request.match_info["package"], request.match_info["file"])


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/", index, "The web console (sign in with a token)", None, tag="console",
             content_type="text/html", errors=(404,), uses_store=False),
    Endpoint("GET", "/console/{file}", console_file, "A file of the web console (modules, styles)",
             None, tag="console", content_type="*/*", errors=(404,), uses_store=False),
    Endpoint("GET", "/console/vendor/{package}/{file}", vendor_file,
             "A library the console uses, as published on the npm registry, with its licence",
             None, tag="console", content_type="*/*", errors=(404,), uses_store=False),
)  # fmt: skip
