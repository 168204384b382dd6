"""The public feeds, pure: CAP alerts in an Atom feed (the OASIS CAP Feeds profile) and the
open public incidents as a GeoJSON FeatureCollection. Alerts and incidents in, bytes out.

Atom (RFC 4287) as CAP aggregators take it (Google Public Alerts among them): one ``<entry>``
per CAP alert, newest first, whose ``<link rel="alternate" type="application/cap+xml">``
is the alert itself; the entry's ``id`` is derived from the alert's sender and identifier
(stable, whatever address the feed is read at), ``updated``/``published`` its ``sent``,
``title`` its headline, ``summary`` its text (a Cancel: its note).

Nothing personal is in either: the alerts say what the notices said, the features what the
incident is (kind, status, households in the area as a count, ETR, its area).
"""

from __future__ import annotations

import hashlib
import uuid
import xml.etree.ElementTree as ET  # builds XML only, never parses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import msgspec

from incident.core.clock import Timestamp
from incident.core.domain import Incident, Kind, Status, Utility
from incident.review.cap import CapAlert, xml_text

__all__ = [
    "ATOM_NS",
    "EPOCH",
    "Built",
    "FeedInfo",
    "OutageCollection",
    "OutageFeature",
    "OutageProperties",
    "atom_feed",
    "built",
    "entry_id",
    "outage_feature",
    "outages_geojson",
]

ATOM_NS = "http://www.w3.org/2005/Atom"
#: ``updated`` of a feed with nothing in it: a fixed time, so an empty feed is the same bytes
#: (and ETag) on every instance.
EPOCH = "1970-01-01T00:00:00+00:00"
_ENTRY_NAMESPACE = uuid.UUID("0f3c9a54-5b0e-4c59-9a52-7b1e2b3c6d14")


class Built(msgspec.Struct, frozen=True, kw_only=True):
    """A feed as served: its bytes, a strong ETag (of the bytes, so every instance gives the
    same one) and its Last-Modified (an HTTP date)."""

    body: bytes
    etag: str
    last_modified: str
    content_type: str


def built(body: bytes, modified: str, content_type: str) -> Built:
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Built(body=body, etag=f'"{digest}"', last_modified=http_date(modified), content_type=content_type)


def http_date(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def atom_time(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FeedInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the feed says about itself."""

    #: Names the feed for its ``id`` (a name-based UUID of it): the same at every address.
    feed_id: str
    #: The feed's own address (``rel="self"``).
    self_url: str
    title: str
    author: str
    #: The utility's public page (``rel="alternate"``), or "".
    web: str = ""


def entry_id(alert: CapAlert) -> str:
    """The entry's id: a name-based UUID of the alert's sender and identifier (what CAP says
    identifies an alert), the same at every address and on every instance."""
    return uuid.uuid5(_ENTRY_NAMESPACE, f"{alert.sender},{alert.identifier}").urn


def atom_feed(info: FeedInfo, alerts: Sequence[CapAlert], alert_url: Callable[[CapAlert], str]) -> bytes:
    """The Atom feed of ``alerts``, newest first; ``alert_url`` is where each is served."""
    ordered = sorted(alerts, key=lambda a: (atom_time(a.sent), a.identifier), reverse=True)
    # Names unqualified under one xmlns: ElementTree's default_namespace refuses the
    # unqualified attributes Atom has (rel, href).
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _sub(feed, "id", uuid.uuid5(_ENTRY_NAMESPACE, info.feed_id).urn)
    _sub(feed, "title", info.title)
    _sub(feed, "updated", atom_time(ordered[0].sent) if ordered else atom_time(EPOCH))
    author = ET.SubElement(feed, "author")
    _sub(author, "name", info.author)
    ET.SubElement(feed, "link", rel="self", type="application/atom+xml", href=info.self_url)
    if info.web:
        ET.SubElement(feed, "link", rel="alternate", type="text/html", href=info.web)
    for alert in ordered:
        _entry(feed, alert, alert_url(alert))
    text = ET.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode()


def _sub(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, name)
    element.text = xml_text(text)
    return element


def _entry(feed: ET.Element, alert: CapAlert, url: str) -> None:
    title, summary, language = _gist(alert)
    entry = ET.SubElement(feed, "entry")
    _sub(entry, "id", entry_id(alert))
    _sub(entry, "title", title)
    when = atom_time(alert.sent)
    _sub(entry, "updated", when)
    _sub(entry, "published", when)
    summary_element = _sub(entry, "summary", summary)
    if language:
        summary_element.set("{http://www.w3.org/XML/1998/namespace}lang", language)
    ET.SubElement(entry, "category", term=alert.msg_type)
    ET.SubElement(entry, "link", rel="alternate", type="application/cap+xml", href=url)


def _gist(alert: CapAlert) -> tuple[str, str, str]:
    title = alert.title or alert.identifier
    if alert.msg_type == "Update":  # a Cancel's note says what it is, in its own language
        title = f"{alert.msg_type}: {title}"
    return title, alert.summary or title, alert.language


# --- GeoJSON ----------------------------------------------------------------------------


class OutageProperties(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: Kind
    utility: Utility
    status: Status
    #: Households in the area when it was last set (a count; None until an area is drawn).
    households_affected: int | None
    #: Estimated time of restoration, once given.
    etr: Timestamp | None
    #: When the incident last changed.
    last_update: Timestamp
    #: How households know the place, per language ({"en": ..., "zh-CN": ...}).
    area_description: dict[str, str]


class OutageFeature(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["Feature"] = "Feature"
    id: str
    #: The area as a GeoJSON geometry in lon/lat, or null while none is drawn.
    geometry: dict[str, Any] | None
    properties: OutageProperties


class OutageCollection(msgspec.Struct, frozen=True, kw_only=True):
    """The open public incidents as a GeoJSON FeatureCollection (RFC 7946)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[OutageFeature]


def outage_feature(incident: Incident) -> OutageFeature:
    """One open public incident as a GeoJSON Feature (its area in lon/lat, or no geometry
    while none is drawn)."""
    return OutageFeature(
        id=incident.id,
        geometry=incident.area,
        properties=OutageProperties(
            id=incident.id,
            kind=incident.kind,
            utility=incident.utility,
            status=incident.status,
            households_affected=incident.households,
            etr=incident.etr,
            last_update=incident.updated_at,
            area_description=dict(incident.area_description),
        ),
    )


def outages_geojson(incidents: Sequence[Incident]) -> bytes:
    """The FeatureCollection of ``incidents`` (in the order given)."""
    return msgspec.json.encode(OutageCollection(features=[outage_feature(i) for i in incidents]))
