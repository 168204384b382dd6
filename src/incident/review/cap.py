"""CAP 1.2 alerts for an incident's public notices. Pure: timeline, notices and templates in,
XML text out (``xml.etree.ElementTree``; tests validate every alert against the OASIS XSD).

A *public notice* is a ``notice_planned`` event whose notice a later ``notice_approved``
event released. Each becomes one ``<alert>``:

- ``identifier`` the notice id (deterministic, unique per sender); ``sender`` the host of
  the utility's public URL; ``sent`` the approval time; ``status`` Exercise for a drill,
  else Actual; ``scope`` Public; ``incidents`` the incident id.
- ``msgType`` Alert for the incident's first public notice, Update for later ones, whose
  ``references`` list every earlier alert (``sender,identifier,sent``). When the incident
  was cancelled a final Cancel alert references them all. Its ``note`` is, in the reviewers'
  export, the status change and its reason; in the public feed a fixed sentence per
  language (the reason is written for colleagues, never for the internet).
- one ``<info>`` per language the notice went out in (the template languages its
  deliveries were rendered in): the SMS text as ``description``, the app-push title as
  ``headline``; ``category``/``event``/``urgency``/``severity``/``certainty`` from the
  incident (as it was when the notice was planned) and the template.
- a short text of at most :data:`WEA_MAX_CHARS` characters (the Wireless Emergency Alerts
  limit) as the ``CMAMlongtext`` parameter, the name IPAWS gives it: the SMS text, cut at a
  word when longer.
- ``<area>``: the dispatcher's description of the area, and the incident's area as it was
  when the notice was planned as ``<polygon>`` elements (exterior rings, ``lat,lon``;
  rings of more than :data:`MAX_POLYGON_POINTS` points are simplified outwards, so the
  polygon still covers every affected household).

The text is rendered again from the notice's stored context with the loaded templates: the
same text the senders rendered, as long as the templates did not change since. A notice
that no longer renders (its template gone or broken, its context from an older version) is
left out, with a warning in the log: never the whole feed.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from incident.core.domain import Incident, Kind, Severity, Status, TimelineEvent, Utility, apply_event
from incident.core.errors import InvalidInput, NotFound
from incident.deliveries.records import Notice
from incident.households import Channel
from incident.notices.context import NoticeContext
from incident.notices.templates import MissingTemplate, NoticeCache, NoticeTemplates, split_push

__all__ = [
    "CAP_NS",
    "EXPORT_NS",
    "MAX_POLYGON_POINTS",
    "WEA_MAX_CHARS",
    "Cancellation",
    "CapAlert",
    "InfoText",
    "PublicNotice",
    "alerts_document",
    "build_alerts",
    "cancellation",
    "cap_alerts",
    "cap_polygons",
    "cap_time",
    "ended_sentences",
    "ending",
    "public_notices",
    "sender_for",
    "short_text",
    "xml_text",
]

log = logging.getLogger(__name__)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
#: The namespace of our container of an incident's alerts (see :func:`alerts_document`).
EXPORT_NS = "urn:x-incident:cap-alerts:1"
#: Longest polygon ring emitted; many CAP consumers (IPAWS among them) accept at most 100.
MAX_POLYGON_POINTS = 100
#: Longest Wireless Emergency Alert text (characters), sent as the ``CMAMlongtext`` parameter.
WEA_MAX_CHARS = 360

_PAST = frozenset({"restored", "advisory_lifted", "follow_up"})
_ADVISORIES = frozenset({"boil_water", "do_not_drink", "do_not_use"})
_SEVERITY = {
    Severity.critical: "Extreme",
    Severity.high: "Severe",
    Severity.medium: "Moderate",
    Severity.low: "Minor",
}
#: What the public feed's Cancel says, per primary language subtag (see :func:`ended_sentences`).
_ENDED: dict[Status, dict[str, str]] = {
    Status.closed: {
        "en": "Incident closed: this alert has ended.",
        "zh": "事件已结束。本警报解除。",
        "es": "Incidente cerrado: esta alerta ha terminado.",
        "fr": "Incident clos : cette alerte est terminée.",
    },
    Status.cancelled: {
        "en": "Incident cancelled: this alert is withdrawn.",
        "zh": "事件已取消。本警报撤销。",
        "es": "Incidente cancelado: esta alerta queda retirada.",
        "fr": "Incident annulé : cette alerte est retirée.",
    },
}
_SERVICE = {Utility.water: "water", Utility.gas: "gas", Utility.heat: "heating"}
_ADVISORY_NAME = {
    "boil_water": "Boil water advisory",
    "do_not_drink": "Do not drink advisory",
    "do_not_use": "Do not use water advisory",
}
_RESPONSE = {
    "gas_leak": "Evacuate",
    "boil_water": "Avoid",
    "do_not_drink": "Avoid",
    "do_not_use": "Avoid",
    "planned_outage": "Prepare",
    "main_break": "Prepare",
    "unplanned_outage": "Prepare",
    "low_pressure": "Prepare",
    "heat_outage": "Prepare",
    "etr_update": "Monitor",
    "restored": "AllClear",
    "advisory_lifted": "AllClear",
    "follow_up": "None",
}


class InfoText(msgspec.Struct, frozen=True, kw_only=True):
    """A notice's text in one language."""

    language: str
    description: str
    headline: str | None = None
    #: How households know the place, in this language.
    area_desc: str


class PublicNotice(msgspec.Struct, frozen=True, kw_only=True):
    """What one alert says: an approved notice with its texts and the incident it was for."""

    notice_id: str
    template: str
    #: When it was approved (the alert's ``sent``), ISO 8601 with an offset.
    sent: str
    #: Quiet hours held it back until then (ISO), or None.
    effective: str | None = None
    #: Planned work: when it starts (ISO), or None.
    onset: str | None = None
    #: The incident as it was when the notice was planned (area, severity).
    incident: Incident
    texts: list[InfoText]
    sender_name: str
    web: str = ""
    contact: str = ""


class Cancellation(msgspec.Struct, frozen=True, kw_only=True):
    at: str
    reason: str | None = None
    #: The status that ended the incident: cancelled, or closed (the public feed ends a
    #: closed incident's alerts too).
    status: Status = Status.cancelled


class CapAlert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert: a complete CAP 1.2 ``<alert>`` element (no XML declaration)."""

    identifier: str
    sender: str
    sent: str
    msg_type: str
    xml: str
    #: What a feed entry says of it: the main language's headline (else its event) and text,
    #: or for a Cancel its note.
    title: str = ""
    summary: str = ""
    language: str = ""

    @property
    def reference(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"

    def document(self) -> str:
        """The alert as a standalone CAP document."""
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + self.xml + "\n"


# --- from the timeline to public notices ------------------------------------------------


def sender_for(utility_url: str) -> str:
    """The CAP sender: the host of the utility's public URL (no spaces, commas or '<&')."""
    host = urlsplit(utility_url).hostname or ""
    return host or "incident.invalid"


def public_notices(
    events: Sequence[TimelineEvent],
    notices: Mapping[str, Notice],
    templates: NoticeTemplates,
    *,
    every_language: bool = False,
) -> list[PublicNotice]:
    """The incident's approved notices in the order they were approved, each with the state
    of the incident when it was planned and its text in every language it went out in (and,
    ``every_language``, in every other language of the templates too, after those)."""
    planned: dict[str, Incident] = {}
    out: list[PublicNotice] = []
    state: Incident | None = None
    for event in events:
        state = apply_event(state, event)
        notice_id = event.data.get("notice_id")
        if not isinstance(notice_id, str):
            continue
        if event.type == "notice_planned":
            planned[notice_id] = state
        elif event.type == "notice_approved" and notice_id in planned and notice_id in notices:
            notice = notices[notice_id]
            try:
                out.append(_public(notice, planned[notice_id], event.at, templates, every_language))
            except (msgspec.ValidationError, InvalidInput, NotFound) as err:
                # Its template was changed or taken away since, or its context was stored by
                # an older version: the other alerts (and the other incidents' feeds) still go.
                log.warning("notice %s left out of the CAP alerts: %s", notice_id, err)
    return out


def cancellation(events: Sequence[TimelineEvent]) -> Cancellation | None:
    for event in events:
        if event.type == "status_changed" and event.data.get("to") == Status.cancelled.value:
            return Cancellation(at=event.at, reason=event.data.get("reason"))
    return None


def ending(events: Sequence[TimelineEvent]) -> Cancellation | None:
    """When the incident was closed or cancelled: what ends its alerts in the public feed."""
    for event in events:
        to = event.data.get("to")
        if event.type == "status_changed" and to in (Status.closed.value, Status.cancelled.value):
            return Cancellation(at=event.at, reason=event.data.get("reason"), status=Status(to))
    return None


def _public(
    notice: Notice, incident: Incident, approved_at: str, templates: NoticeTemplates, every_language: bool
) -> PublicNotice:
    context = msgspec.convert(notice.context, NoticeContext)
    cache = templates.cache(context)
    # The drill marker heads every drill text; the headline is the notice's own title
    # (status Exercise is what marks a drill alert).
    titles = templates.cache(msgspec.structs.replace(context, drill=False))
    tags = sorted(
        (notice.counts.get("by_language") or {templates.default_language: 0}).items(),
        key=lambda item: (-int(item[1]), item[0]),
    )
    sent_in = len(tags)
    if every_language:
        tags += [(language, 0) for language in sorted(templates.languages)]
    texts: dict[str, InfoText] = {}
    for place, (tag, _) in enumerate(tags):
        try:
            sms = cache.render(notice.template, Channel.sms, tag)
        except (InvalidInput, NotFound) as err:
            if place < sent_in:
                raise  # a language it went out in: the alert would not say what was sent
            # A language added (or changed) since that fails for this notice: the others go.
            log.warning("notice %s: no %s text in the CAP alert: %s", notice.notice_id, tag, err)
            continue
        if sms.language_used in texts:
            continue
        texts[sms.language_used] = InfoText(
            language=sms.language_used,
            description=sms.text,
            headline=_headline(titles, notice.template, sms.language_used),
            area_desc=context.area_i18n.get(sms.language_used, context.area),
        )
    return PublicNotice(
        notice_id=notice.notice_id,
        template=notice.template,
        sent=approved_at,
        effective=notice.send_after,
        onset=context.start.isoformat() if context.start else None,
        incident=incident,
        texts=list(texts.values()),
        sender_name=context.utility_name,
        web=context.utility_url,
        contact=context.utility_phone,
    )


def _headline(titles: NoticeCache, template: str, language: str) -> str | None:
    try:
        title, _ = split_push(titles.render(template, Channel.push, language).text)
    except MissingTemplate:
        return None
    return title[:160] or None


# --- alerts -----------------------------------------------------------------------------


def cap_time(iso: str) -> str:
    """A CAP date-time: whole seconds, with an offset; UTC as ``-00:00`` (CAP 1.2, 3.3.2)."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def build_alerts(
    notices: Sequence[PublicNotice],
    *,
    sender: str,
    incident_id: str,
    drill: bool,
    cancelled: Cancellation | None = None,
    public: bool = False,
) -> list[CapAlert]:
    """One alert per public notice, and a final Cancel when the incident was cancelled.
    ``public``: the Cancel's note is :func:`ended_sentences`, not the status change's reason
    (which the reviewers' export keeps)."""
    status = "Exercise" if drill else "Actual"
    alerts: list[CapAlert] = []
    for notice in notices:
        msg_type = "Update" if alerts else "Alert"
        sent = cap_time(notice.sent)
        root = _header(notice.notice_id, sender, sent, status, msg_type)
        if drill:
            _sub(root, "note", "Exercise: a drill, not a real incident.")
        if alerts:
            _sub(root, "references", " ".join(a.reference for a in alerts))
        _sub(root, "incidents", incident_id)
        for text in notice.texts:
            _info(root, notice, text)
        main = notice.texts[0] if notice.texts else None
        gist = {
            "title": (main.headline if main else None)
            or event_name(notice.incident.kind, notice.incident.utility, notice.template),
            "summary": main.description if main else "",
            "language": main.language if main else "",
        }
        alerts.append(_alert(root, notice.notice_id, sender, sent, msg_type, **gist))
    if cancelled is not None and alerts:
        identifier = f"{incident_id}-cancel"
        sent = cap_time(cancelled.at)
        root = _header(identifier, sender, sent, status, "Cancel")
        if public:
            languages = list(dict.fromkeys(t.language for n in notices for t in n.texts))
            lines = ended_sentences(cancelled.status, languages)
            note, language = "\n".join(lines), languages[0] if languages else ""
            title = lines[0]
        else:
            reason = f": {cancelled.reason}" if cancelled.reason else ""
            note = title = f"Incident {cancelled.status.value}{reason}"
            language = ""
        _sub(root, "note", note)
        _sub(root, "references", " ".join(a.reference for a in alerts))
        _sub(root, "incidents", incident_id)
        alerts.append(
            _alert(root, identifier, sender, sent, "Cancel", title=title, summary=title, language=language)
        )
    return alerts


def ended_sentences(status: Status, languages: Sequence[str]) -> list[str]:
    """What the public feed says of an incident that ended: a fixed sentence per language
    (of ``languages``, in their order; English for one we have no sentence in), never the
    dispatcher's reason, which is written for colleagues (names, numbers, blame)."""
    sentences = _ENDED[status]
    found = [sentences.get(tag.split("-")[0].lower(), sentences["en"]) for tag in languages]
    return list(dict.fromkeys(found)) or [sentences["en"]]


def cap_alerts(
    events: Sequence[TimelineEvent],
    notices: Mapping[str, Notice],
    templates: NoticeTemplates,
    sender: str,
    *,
    end_on_close: bool = False,
    every_language: bool = False,
    public: bool = False,
) -> list[CapAlert]:
    """Every alert of the incident whose full timeline ``events`` is; a Cancel ends them when
    the incident was cancelled (or, ``end_on_close``, closed). ``every_language``: an ``info``
    in every language of the templates, not only those the notice went out in (the public
    feed speaks to everyone in the area, not only the registry). ``public``: the alerts of
    the public feed: both of those, and no word of the dispatcher's reason for the end."""
    if not events:
        return []
    incident = events[0]
    end_on_close, every_language = end_on_close or public, every_language or public
    return build_alerts(
        public_notices(events, notices, templates, every_language=every_language),
        sender=sender,
        incident_id=incident.incident_id,
        drill=bool(incident.data.get("drill", False)),
        cancelled=ending(events) if end_on_close else cancellation(events),
        public=public,
    )


def alerts_document(incident_id: str, alerts: Sequence[CapAlert]) -> str:
    """The incident's alerts in one XML document: ``<alerts>`` of our own namespace holding
    complete CAP 1.2 ``<alert>`` elements, in order.

    CAP has one alert per document and no list element. A reviewer wants the whole incident
    in one file, and an integrator wants each alert exactly as a CAP consumer takes it: here
    every child is a byte-for-byte standalone alert (the same text as ``?alert=ID`` serves),
    in the CAP namespace, valid against the OASIS schema on its own. JSON holding XML
    strings would hide the XML from XML tools, and a zip of a few small files adds a step
    for nothing.
    """
    head = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alerts xmlns="{EXPORT_NS}" incident="{_attr(incident_id)}" count="{len(alerts)}">\n'
    )
    return head + "".join(a.xml + "\n" for a in alerts) + "</alerts>\n"


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


#: What XML 1.0 cannot hold (C0 controls but tab and line breaks, lone surrogates, U+FFFE/F),
#: and the C1 controls it discourages: ElementTree writes them as they are, and the document
#: no longer parses.
_NOT_XML = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters an XML document cannot carry (texts stored before
    the API refused control characters still have them)."""
    return _NOT_XML.sub("", text)


def _sub(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, _q(name))
    element.text = xml_text(text)
    return element


def _header(identifier: str, sender: str, sent: str, status: str, msg_type: str) -> ET.Element:
    root = ET.Element(_q("alert"))
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", sent)
    _sub(root, "status", status)
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    return root


def _alert(root: ET.Element, identifier: str, sender: str, sent: str, msg_type: str, **gist: str) -> CapAlert:
    xml = ET.tostring(root, encoding="unicode", default_namespace=CAP_NS)
    return CapAlert(identifier=identifier, sender=sender, sent=sent, msg_type=msg_type, xml=xml, **gist)


def _info(root: ET.Element, notice: PublicNotice, text: InfoText) -> None:
    incident, template = notice.incident, notice.template
    info = ET.SubElement(root, _q("info"))
    _sub(info, "language", text.language)
    for category in categories(incident.kind, template):
        _sub(info, "category", category)
    _sub(info, "event", event_name(incident.kind, incident.utility, template))
    if template in _RESPONSE:
        _sub(info, "responseType", _RESPONSE[template])
    _sub(info, "urgency", urgency(incident.kind, template))
    _sub(info, "severity", "Minor" if template in _PAST else _SEVERITY[incident.severity])
    _sub(info, "certainty", certainty(incident.kind, template))
    if notice.effective:
        _sub(info, "effective", cap_time(notice.effective))
    if notice.onset:
        _sub(info, "onset", cap_time(notice.onset))
    _sub(info, "senderName", notice.sender_name)
    if text.headline:
        _sub(info, "headline", text.headline)
    _sub(info, "description", text.description)
    if notice.web:
        _sub(info, "web", notice.web)
    if notice.contact:
        _sub(info, "contact", notice.contact)
    parameter = ET.SubElement(info, _q("parameter"))
    _sub(parameter, "valueName", "CMAMlongtext")
    _sub(parameter, "value", short_text(text.description))
    area = ET.SubElement(info, _q("area"))
    _sub(area, "areaDesc", text.area_desc)
    for polygon in cap_polygons(incident.area):
        _sub(area, "polygon", polygon)


def short_text(text: str, limit: int = WEA_MAX_CHARS) -> str:
    """``text`` on one line in at most ``limit`` characters: cut at the last space that
    leaves room for an ellipsis (anywhere, for a script without spaces)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head = flat[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:.") + "…"


# --- mapping the incident and template to CAP's words -----------------------------------


def categories(kind: Kind, template: str) -> list[str]:
    """Gas leaks are Safety, contamination is Health, outages are Infra; a water-quality
    advisory is Health as well, whatever the incident."""
    if kind is Kind.contamination:
        found = ["Health"]
    elif kind is Kind.gas_leak:
        found = ["Safety"]
    else:
        found = ["Infra"]
    if template in _ADVISORIES and "Health" not in found:
        found.append("Health")
    return found


def event_name(kind: Kind, utility: Utility, template: str) -> str:
    service = _SERVICE[utility]
    if template in _ADVISORIES:
        return _ADVISORY_NAME[template]
    if template == "restored":
        return f"{service.capitalize()} service restored"
    if template == "advisory_lifted":
        return "Water advisory lifted"
    if template == "etr_update":
        return f"{_kind_name(kind, service)}: restoration update"
    if template == "follow_up":
        return f"{_kind_name(kind, service)}: follow-up"
    if template in Kind.__members__:
        return _kind_name(Kind(template), service)
    return _kind_name(kind, service)


def _kind_name(kind: Kind, service: str) -> str:
    return {
        Kind.main_break: "Water main break",
        Kind.unplanned_outage: f"Unplanned {service} outage",
        Kind.planned_outage: f"Planned {service} outage",
        Kind.low_pressure: f"Low {service} pressure",
        Kind.contamination: "Water contamination",
        Kind.gas_leak: "Gas leak",
        Kind.heat_outage: "Heating outage",
    }[kind]


def urgency(kind: Kind, template: str) -> str:
    if template in _PAST:
        return "Past"
    if template == "planned_outage" or kind is Kind.planned_outage:
        return "Future"
    if template == "gas_leak" or template in _ADVISORIES or kind in (Kind.gas_leak, Kind.contamination):
        return "Immediate"
    return "Expected"


def certainty(kind: Kind, template: str) -> str:
    if template not in _PAST and (template == "planned_outage" or kind is Kind.planned_outage):
        return "Likely"
    return "Observed"


# --- areas ------------------------------------------------------------------------------


def cap_polygons(geometry: dict[str, Any] | None, max_points: int = MAX_POLYGON_POINTS) -> list[str]:
    """CAP polygons of a GeoJSON area (lon/lat): one per part's exterior ring, as
    space-separated ``lat,lon`` pairs, closed, at least 4 points, at most ``max_points``."""
    if not geometry:
        return []
    out: list[str] = []
    for polygon in _polygons(shape(geometry)):
        text = _ring_text(_fit(Polygon(polygon.exterior), max_points))
        if text:
            out.append(text)
    return out


def _polygons(geometry: BaseGeometry) -> Iterator[Polygon]:
    if isinstance(geometry, Polygon):
        if not geometry.is_empty:
            yield geometry
    elif isinstance(geometry, MultiPolygon | GeometryCollection):
        for part in geometry.geoms:
            yield from _polygons(part)


def _fit(polygon: Polygon, max_points: int) -> Polygon:
    """At most ``max_points`` points, never smaller: simplify by a tolerance, then grow by a
    little more (mitred corners add no points), doubling the tolerance until short enough."""
    if len(polygon.exterior.coords) <= max_points:
        return polygon
    minx, miny, maxx, maxy = polygon.bounds
    tolerance = max(maxx - minx, maxy - miny, 1e-9) / 1000
    for _ in range(40):
        simpler = shapely.simplify(polygon, tolerance, preserve_topology=True)
        # A little more than the tolerance: every original point is within it of the simpler ring.
        grown = shapely.buffer(simpler, tolerance * 1.1, join_style="mitre", mitre_limit=4.0)
        largest = max(_polygons(grown), key=lambda p: p.area, default=None)
        if largest is not None and len(largest.exterior.coords) <= max_points:
            return Polygon(largest.exterior)
        tolerance *= 2
    hull = shapely.oriented_envelope(polygon)
    return hull if isinstance(hull, Polygon) else polygon


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _ring_text(polygon: Polygon) -> str:
    pairs: list[str] = []
    for lon, lat in ((c[0], c[1]) for c in polygon.exterior.coords):
        pair = f"{_number(lat)},{_number(lon)}"
        if not pairs or pairs[-1] != pair:
            pairs.append(pair)
    if pairs and pairs[0] != pairs[-1]:
        pairs.append(pairs[0])
    return " ".join(pairs) if len(pairs) >= 4 else ""
