"""The public feeds (no token): CAP 1.2 alerts in Atom, each alert on its own, and the open
public incidents as GeoJSON; built and kept by :class:`incident.review.public_feeds.PublicFeeds`.

Every answer carries a strong ETag, Last-Modified, a short ``Cache-Control: public`` and
``Access-Control-Allow-Origin: *`` (no credentials are ever involved); a
matching ``If-None-Match`` (or, without one, an ``If-Modified-Since`` of exactly the current
Last-Modified) is a 304 without a body.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from aiohttp import web

from incident.api.endpoint import Endpoint
from incident.core.errors import NotFound
from incident.keys import FEEDS, SETTINGS
from incident.review.feeds import Built, OutageCollection
from incident.review.public_feeds import ATOM, CAP_XML, FEED_PATH, GEOJSON


async def cap_atom(request: web.Request) -> web.Response:
    return answer(request, await request.app[FEEDS].atom())


async def cap_alert(request: web.Request) -> web.Response:
    identifier = request.match_info["alert_id"]
    found = await request.app[FEEDS].alert(identifier)
    if found is None:
        raise NotFound(f"no public alert {identifier!r} (the CAP feed {FEED_PATH} lists them)")
    return answer(request, found)


async def outages(request: web.Request) -> web.Response:
    return answer(request, await request.app[FEEDS].outages())


def answer(request: web.Request, feed: Built) -> web.Response:
    """``feed``, or a 304 when the client's copy is current."""
    headers = {
        "ETag": feed.etag,
        "Last-Modified": feed.last_modified,
        "Cache-Control": f"public, max-age={request.app[SETTINGS].feeds.max_age_s}",
        # Feeds are for others to take (aggregators, maps on other sites); no credentials.
        "Access-Control-Allow-Origin": "*",
    }
    if not_modified(request.headers.get("If-None-Match"), request.headers.get("If-Modified-Since"), feed):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=feed.body, headers={**headers, "Content-Type": f"{feed.content_type}; charset=utf-8"}
    )


def not_modified(if_none_match: str | None, if_modified_since: str | None, feed: Built) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when given (weak comparison, ``*`` matches);
    otherwise If-Modified-Since, honoured only when it is our very Last-Modified (a date the
    client got from us), since a feed can lose an entry without a newer date."""
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or feed.etag in tags
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return since == parsedate_to_datetime(feed.last_modified)


_PUBLIC = "public"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        FEED_PATH,
        cap_atom,
        "The public alerts as an Atom feed (OASIS CAP Feeds): one entry per CAP 1.2 alert, newest"
        " first, linking the alert; updates and the end of an incident as Update and Cancel alerts"
        " referencing the earlier ones. Public incidents only, never drills; no token",
        None,
        tag=_PUBLIC,
        content_type=ATOM,
        conditional=True,
    ),
    Endpoint(
        "GET",
        "/public/feeds/cap/{alert_id}.xml",
        cap_alert,
        "One CAP 1.2 alert of the public feed, as a standalone document; no token",
        None,
        tag=_PUBLIC,
        content_type=CAP_XML,
        conditional=True,
    ),
    Endpoint(
        "GET",
        "/public/feeds/outages.geojson",
        outages,
        "The open public incidents as a GeoJSON FeatureCollection (lon/lat): kind, utility, status,"
        " households affected, ETR, last update and the public area description; no token",
        None,
        tag=_PUBLIC,
        response=OutageCollection,
        content_type=GEOJSON,
        conditional=True,
    ),
)
