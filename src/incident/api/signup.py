"""The sign-up page: residents sign themselves up (and later change or remove the sign-up
through their signed link). Static files of this service, no CDN, no inline script."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from incident.api.console import cached
from incident.api.endpoint import Endpoint
from incident.core.errors import NotFound
from incident.keys import SERVICE_AREA, SETTINGS

#: The page's files (``src/incident/signup/static``).
STATIC = Path(__file__).resolve().parent.parent / "signup" / "static"

_FILES = {"signup.js": "text/javascript", "signup.css": "text/css"}
_NAME = re.compile(r"^[a-z.]{1,20}$")

POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


async def page(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].enrolment.enabled:
        raise NotFound("sign-up is not offered here")
    raw = await asyncio.to_thread(_read, STATIC / "signup.html")
    if raw is None:
        raise NotFound("the sign-up page is not installed")
    # The map of the page is the service area's extent (numbers only: nothing to escape).
    extent = request.app[SERVICE_AREA].files.extent
    box = (
        ""
        if extent is None
        else ",".join(f"{v:.6f}" for v in (extent.west, extent.south, extent.east, extent.north))
    )
    response = cached(request, raw.replace(b"__EXTENT__", box.encode()), "text/html")
    response.headers["Content-Security-Policy"] = POLICY
    # The manage token travels in the fragment, which is never sent; no referrer either.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def page_file(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    content_type = _FILES.get(name) if _NAME.match(name) else None
    body = await asyncio.to_thread(_read, STATIC / name) if content_type else None
    if body is None or content_type is None:
        raise NotFound(f"no sign-up file {name}")
    return cached(request, body, content_type)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/public/signup", page, "The sign-up page for residents (English and Chinese)", None,
             tag="public", content_type="text/html", errors=(404,), uses_store=False),
    Endpoint("GET", "/public/signup/{file}", page_file, "A file of the sign-up page (script, styles)", None,
             tag="public", content_type="*/*", errors=(404,), uses_store=False),
)  # fmt: skip
