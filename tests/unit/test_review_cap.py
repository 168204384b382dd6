"""CAP 1.2 alerts from a timeline: every alert valid against the OASIS schema, and saying
what the incident's notices said, where and when."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from lxml import etree
from shapely.geometry import Polygon, shape

import incident.review
from incident.core import domain
from incident.core.domain import Declaration, Kind, Severity, Status, Utility
from incident.core.timeline import seal
from incident.deliveries.records import Notice
from incident.households import Channel
from incident.notices.context import NoticeContext
from incident.notices.templates import NoticeTemplates, load_templates
from incident.review.cap import (
    CAP_NS,
    EXPORT_NS,
    alerts_document,
    cap_alerts,
    cap_polygons,
    cap_time,
    sender_for,
    short_text,
)
from incident.settings import BUNDLED_DIR

XSD = Path(incident.review.__file__).parent / "CAP-v1.2.xsd"
TEMPLATES = BUNDLED_DIR / "templates" / "notices"
NS = {"cap": CAP_NS}
SENDER = "riverside.example"
T0 = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
BOX = {
    "type": "Polygon",
    "coordinates": [[[-85.56, 38.02], [-85.53, 38.02], [-85.53, 38.05], [-85.56, 38.05], [-85.56, 38.02]]],
}
OTHER = {
    "type": "Polygon",
    "coordinates": [[[-85.60, 38.00], [-85.58, 38.00], [-85.58, 38.01], [-85.60, 38.00]]],
}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


@pytest.fixture(scope="module")
def templates() -> NoticeTemplates:
    return load_templates(TEMPLATES)


class Story:
    """An incident's timeline built with the real domain commands and hash chain."""

    def __init__(self, kind: Kind = Kind.main_break, utility: Utility = Utility.water, drill: bool = False):
        self.now = T0
        declaration = Declaration(
            kind=kind, utility=utility, title="Main break on Elm St", severity=Severity.high, drill=drill
        )
        self.state, self.events = seal(
            "INC-2026-000042", None, domain.declare(declaration, "alice", owner="alice"), T0
        )
        self.notices: dict[str, Notice] = {}

    def add(self, *drafts: domain.EventDraft) -> None:
        self.now += timedelta(minutes=7)
        self.state, more = seal(self.state.id, self.state, list(drafts), self.now)
        self.events += more

    def area(self, geometry: dict[str, Any]) -> None:
        data = {"op": "replace", "part": {"method": "drawn"}, "parts": [{"method": "drawn", "geometry": geometry}],
                "geometry": geometry, "households_before": 0, "households_after": 10}  # fmt: skip
        self.add(domain.EventDraft(type="area_changed", actor="alice", data=data))

    def notice(
        self, template: str, by_language: dict[str, int], *, approve: bool = True, **facts: Any
    ) -> str:
        number = len(self.notices) + 1
        notice_id = f"{self.state.id}-N{number}"
        context = NoticeContext(
            utility_name="Riverside Water", utility_phone="+86 21 5555 0100",
            utility_url="https://riverside.example/outage", incident_id=self.state.id, kind=self.state.kind,
            utility=self.state.utility, drill=self.state.drill, timezone="Asia/Shanghai",
            **{"area": "Elm St 1-99", **facts},
        )  # fmt: skip
        counts = {"households": sum(by_language.values()), "by_language": by_language}
        self.notices[notice_id] = Notice(
            notice_id=notice_id, incident_id=self.state.id, template=template, channels=["sms", "push"],
            status="approved" if approve else "planned", created_by="alice", created_at=self.now.isoformat(),
            counts=counts, context=msgspec.to_builtins(context),
        )  # fmt: skip
        data = {"notice_id": notice_id, "template": template, "channels": ["sms", "push"], **counts}
        self.add(domain.EventDraft(type="notice_planned", actor="alice", data=data))
        if approve:
            self.add(domain.EventDraft(type="notice_approved", actor="alice", data={"notice_id": notice_id}))
        return notice_id

    def status(self, to: Status, reason: str | None = None) -> None:
        self.add(*domain.change_status(self.state, to, "alice", reason))

    def alerts(self, templates: NoticeTemplates) -> list[etree._Element]:
        found = cap_alerts(self.events, self.notices, templates, SENDER)
        return [etree.fromstring(a.document().encode()) for a in found]


def text(element: etree._Element, path: str) -> str:
    found = element.findtext(path, namespaces=NS)
    assert found is not None, path
    return found


def all_text(element: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in element.findall(path, namespaces=NS)]


def assert_valid(schema: etree.XMLSchema, alerts: list[etree._Element]) -> None:
    for alert in alerts:
        assert schema.validate(alert), schema.error_log


def test_first_notice_is_an_alert_in_chinese_and_english(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    notice_id = story.notice(
        "boil_water", {"zh-CN": 6, "en": 3, "es": 1}, area_i18n={"zh-CN": "榆树街1-99号"},
        etr=datetime(2026, 11, 22, 10, 30, tzinfo=UTC),
    )  # fmt: skip
    [alert] = story.alerts(templates)
    assert_valid(schema, [alert])
    approved = story.events[-1]
    assert text(alert, "cap:identifier") == notice_id
    assert text(alert, "cap:sender") == SENDER
    assert text(alert, "cap:sent") == "2026-11-22T08:36:00-00:00" == cap_time(approved.at)
    assert (text(alert, "cap:status"), text(alert, "cap:msgType"), text(alert, "cap:scope")) == (
        "Actual", "Alert", "Public",
    )  # fmt: skip
    assert alert.find("cap:references", NS) is None
    assert text(alert, "cap:incidents") == story.state.id

    infos = alert.findall("cap:info", NS)
    # Spanish speakers got the English text (no Spanish templates): one block per language sent.
    assert [text(i, "cap:language") for i in infos] == ["zh-CN", "en"]
    context = msgspec.convert(story.notices[notice_id].context, NoticeContext)
    for info in infos:
        language = text(info, "cap:language")
        sms = templates.render("boil_water", Channel.sms, language, context).text
        push = templates.render("boil_water", Channel.push, language, context).text
        assert text(info, "cap:description") == sms
        assert text(info, "cap:headline") == push.splitlines()[0]
        assert all_text(info, "cap:category") == ["Infra", "Health"]
        assert text(info, "cap:event") == "Boil water advisory"
        assert (text(info, "cap:urgency"), text(info, "cap:severity"), text(info, "cap:certainty")) == (
            "Immediate", "Severe", "Observed",
        )  # fmt: skip
        assert text(info, "cap:senderName") == "Riverside Water"
    zh, en = infos
    assert "煮沸" in text(zh, "cap:description") and text(zh, "cap:area/cap:areaDesc") == "榆树街1-99号"
    assert "BOIL WATER" in text(en, "cap:description") and text(en, "cap:area/cap:areaDesc") == "Elm St 1-99"


def test_polygon_is_closed_lat_lon_as_the_area_was_when_planned(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 2})
    story.area(OTHER)  # the area grows after the first notice
    story.notice("etr_update", {"en": 2})
    first, second = story.alerts(templates)
    assert_valid(schema, [first, second])
    for alert, geometry in ((first, BOX), (second, OTHER)):
        [polygon] = all_text(alert, "cap:info/cap:area/cap:polygon")
        pairs = [tuple(map(float, p.split(","))) for p in polygon.split(" ")]
        assert len(pairs) >= 4 and pairs[0] == pairs[-1]
        assert all(37 < lat < 39 and -86 < lon < -85 for lat, lon in pairs)  # lat first
        assert Polygon([(lon, lat) for lat, lon in pairs]).equals(shape(geometry))


def test_later_notices_update_and_reference_every_earlier_alert(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    n1 = story.notice("main_break", {"en": 2})
    story.notice("etr_update", {"en": 2}, approve=False)  # never approved: not public
    n3 = story.notice("etr_update", {"en": 2})
    n4 = story.notice("restored", {"en": 2})
    alerts = story.alerts(templates)
    assert_valid(schema, alerts)
    assert [text(a, "cap:identifier") for a in alerts] == [n1, n3, n4]
    assert [text(a, "cap:msgType") for a in alerts] == ["Alert", "Update", "Update"]
    triples = [f"{SENDER},{text(a, 'cap:identifier')},{text(a, 'cap:sent')}" for a in alerts]
    assert text(alerts[1], "cap:references") == triples[0]
    assert text(alerts[2], "cap:references") == " ".join(triples[:2])
    restored = alerts[2].find("cap:info", NS)
    assert restored is not None
    assert (text(restored, "cap:urgency"), text(restored, "cap:severity")) == ("Past", "Minor")
    assert text(restored, "cap:responseType") == "AllClear"
    assert text(restored, "cap:event") == "Water service restored"


def test_a_cancelled_incident_ends_with_a_cancel_referencing_all(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story(kind=Kind.gas_leak, utility=Utility.gas)
    story.area(BOX)
    story.notice("gas_leak", {"en": 1})
    story.notice("gas_leak", {"en": 1})
    story.status(Status.active)
    story.status(Status.cancelled, "false alarm: meter fault")
    alerts = story.alerts(templates)
    assert_valid(schema, alerts)
    assert [text(a, "cap:msgType") for a in alerts] == ["Alert", "Update", "Cancel"]
    cancel = alerts[-1]
    assert text(cancel, "cap:identifier") == f"{story.state.id}-cancel"
    assert text(cancel, "cap:sent") == cap_time(story.events[-1].at)
    assert text(cancel, "cap:references") == " ".join(
        f"{SENDER},{text(a, 'cap:identifier')},{text(a, 'cap:sent')}" for a in alerts[:2]
    )
    assert "false alarm: meter fault" in text(cancel, "cap:note")
    info = alerts[0].find("cap:info", NS)
    assert info is not None
    assert all_text(info, "cap:category") == ["Safety"]
    assert (text(info, "cap:urgency"), text(info, "cap:responseType")) == ("Immediate", "Evacuate")


def test_a_closed_incident_ends_with_a_cancel_only_when_asked(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 1})
    story.status(Status.active)
    story.status(Status.restoring)
    story.status(Status.closed, "repaired")
    # The review export keeps a closed incident's alerts as they were sent...
    assert [a.msg_type for a in cap_alerts(story.events, story.notices, templates, SENDER)] == ["Alert"]
    # ...the public feed ends them.
    found = cap_alerts(story.events, story.notices, templates, SENDER, end_on_close=True)
    alerts = [etree.fromstring(a.document().encode()) for a in found]
    assert_valid(schema, alerts)
    assert [text(a, "cap:msgType") for a in alerts] == ["Alert", "Cancel"]
    assert text(alerts[1], "cap:note") == "Incident closed: repaired"
    assert text(alerts[1], "cap:references") == found[0].reference


def test_every_info_has_a_wea_text_of_at_most_360_characters(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 2, "zh-CN": 1}, area="Elm St " + "and the lanes off it " * 30)
    [alert] = story.alerts(templates)
    assert_valid(schema, [alert])
    for info in alert.findall("cap:info", NS):
        [name] = all_text(info, "cap:parameter/cap:valueName")
        wea = text(info, "cap:parameter/cap:value")
        assert name == "CMAMlongtext" and 0 < len(wea) <= 360
        assert len(text(info, "cap:description")) > 360 and wea.endswith("…")
        assert " ".join(text(info, "cap:description").split()).startswith(wea[:-1])


def test_the_public_feed_has_every_language_the_main_one_first(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 3})
    [only] = cap_alerts(story.events, story.notices, templates, SENDER)
    [every] = cap_alerts(story.events, story.notices, templates, SENDER, every_language=True)
    alerts = [etree.fromstring(a.document().encode()) for a in (only, every)]
    assert_valid(schema, alerts)
    assert [all_text(a, "cap:info/cap:language") for a in alerts] == [["en"], ["en", "zh-CN"]]
    [_, chinese] = alerts[1].findall("cap:info", NS)
    assert "停" in text(chinese, "cap:description") or "水" in text(chinese, "cap:description")


def test_short_text_cuts_at_a_word_or_anywhere_in_a_script_without_spaces() -> None:
    assert short_text("Water  off\non Elm St") == "Water off on Elm St"
    cut = short_text("word " * 100, 50)
    assert len(cut) <= 50 and cut.endswith("word…")
    assert short_text("停水" * 300, 360) == "停水" * 179 + "停…"


def test_a_cancelled_incident_without_public_notices_has_no_alerts(templates: NoticeTemplates) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 1}, approve=False)
    story.status(Status.cancelled)
    assert story.alerts(templates) == []


def test_a_drill_is_an_exercise(schema: etree.XMLSchema, templates: NoticeTemplates) -> None:
    story = Story(kind=Kind.contamination, drill=True)
    story.area(BOX)
    story.notice("do_not_drink", {"en": 1})
    [alert] = story.alerts(templates)
    assert_valid(schema, [alert])
    assert text(alert, "cap:status") == "Exercise"
    info = alert.find("cap:info", NS)
    assert info is not None
    assert all_text(info, "cap:category") == ["Health"]
    assert text(info, "cap:description").startswith("DRILL")  # the text as it was sent
    assert not text(info, "cap:headline").startswith("DRILL")  # the notice's own title


def test_planned_work_is_future_and_likely_with_its_onset(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story(kind=Kind.planned_outage)
    story.area(BOX)
    start = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    story.notice("planned_outage", {"en": 1}, start=start, end=start + timedelta(hours=8))
    [alert] = story.alerts(templates)
    assert_valid(schema, [alert])
    info = alert.find("cap:info", NS)
    assert info is not None
    assert (text(info, "cap:urgency"), text(info, "cap:certainty")) == ("Future", "Likely")
    assert text(info, "cap:onset") == "2026-11-24T01:00:00-00:00"
    assert text(info, "cap:event") == "Planned water outage"


def test_the_container_holds_the_standalone_alerts(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 1, "zh-CN": 1})
    story.notice("restored", {"en": 1, "zh-CN": 1})
    found = cap_alerts(story.events, story.notices, templates, SENDER)
    document = alerts_document(story.state.id, found)
    root = etree.fromstring(document.encode())
    assert root.tag == f"{{{EXPORT_NS}}}alerts" and root.get("count") == "2"
    children = list(root)
    assert [c.tag for c in children] == [f"{{{CAP_NS}}}alert"] * 2
    for child, alert in zip(children, found, strict=True):
        assert schema.validate(child), schema.error_log
        assert alert.xml in document  # the standalone alert, verbatim
        assert child.findtext("cap:identifier", namespaces=NS) == alert.identifier


def test_multipolygon_gives_one_polygon_per_part() -> None:
    multi = {"type": "MultiPolygon", "coordinates": [BOX["coordinates"], OTHER["coordinates"]]}
    holed = {"type": "Polygon", "coordinates": [*BOX["coordinates"], [[-85.55, 38.03], [-85.54, 38.03],
                                                                       [-85.54, 38.04], [-85.55, 38.03]]]}  # fmt: skip
    assert len(cap_polygons(multi)) == 2
    assert cap_polygons(holed) == cap_polygons(BOX)  # exterior rings only
    assert cap_polygons(None) == []


def test_long_rings_are_simplified_outwards() -> None:
    ring = [(-85.5 + 0.01 * math.cos(a / 500 * math.tau) * (1 + 0.1 * math.sin(7 * a / 500 * math.tau)),
             38.0 + 0.01 * math.sin(a / 500 * math.tau)) for a in range(500)]  # fmt: skip
    original = Polygon(ring)
    [polygon] = cap_polygons({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, max_points=100)
    pairs = [tuple(map(float, p.split(","))) for p in polygon.split(" ")]
    assert 4 <= len(pairs) <= 100 and pairs[0] == pairs[-1]
    simplified = Polygon([(lon, lat) for lat, lon in pairs])
    assert simplified.buffer(1e-6).covers(original)  # nobody inside the area falls outside
    assert simplified.area < original.area * 1.2  # and it did not balloon


def test_times_and_sender() -> None:
    assert cap_time("2026-11-22T08:15:00.123456+00:00") == "2026-11-22T08:15:00-00:00"
    assert cap_time("2026-11-22T16:15:00+08:00") == "2026-11-22T08:15:00-00:00"
    assert sender_for("https://riverside.example/outage") == "riverside.example"
    assert "," not in sender_for("") and " " not in sender_for("")


def test_incident_state_used_is_the_one_when_planned(templates: NoticeTemplates) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 1})
    story.add(*domain.change_severity(story.state, Severity.critical, "alice", None))
    story.notice("etr_update", {"en": 1})
    first, second = story.alerts(templates)
    assert text(first, "cap:info/cap:severity") == "Severe"
    assert text(second, "cap:info/cap:severity") == "Extreme"


@pytest.mark.parametrize("to", [Status.closed, Status.cancelled])
def test_the_public_feed_never_carries_the_dispatchers_reason(
    schema: etree.XMLSchema, templates: NoticeTemplates, to: Status
) -> None:
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"zh-CN": 2, "en": 1})
    story.status(Status.active)
    story.status(to, "Qzx fault; Bob (+1 555 0199) gave a wrong reading")
    # The reviewers' export keeps the reason...
    exported = cap_alerts(story.events, story.notices, templates, SENDER, end_on_close=True)
    assert "Bob" in exported[-1].xml
    # ...the public feed says a fixed sentence per language instead, the main language first.
    found = cap_alerts(story.events, story.notices, templates, SENDER, public=True)
    alerts = [etree.fromstring(a.document().encode()) for a in found]
    assert_valid(schema, alerts)
    assert [a.msg_type for a in found] == ["Alert", "Cancel"]
    cancel = found[-1]
    assert not [a for a in found if "Bob" in a.xml or "Qzx" in a.xml]
    assert "Bob" not in cancel.title + cancel.summary and "Qzx" not in cancel.title + cancel.summary
    note = text(alerts[-1], "cap:note")
    english = "Incident closed" if to is Status.closed else "Incident cancelled"
    assert note.splitlines()[0].startswith("事件") and english in note.splitlines()[1]
    assert cancel.language == "zh-CN" and cancel.summary == note.splitlines()[0]
    # Every language of the templates is in the public alert (as in its infos).
    assert [all_text(a, "cap:info/cap:language") for a in alerts[:1]] == [["zh-CN", "en"]]


def test_characters_xml_cannot_hold_are_left_out_and_every_alert_still_parses(
    schema: etree.XMLSchema, templates: NoticeTemplates
) -> None:
    # Text stored before control characters were refused at the door.
    story = Story()
    story.area(BOX)
    story.notice("main_break", {"en": 1}, area="Elm\x01 St\x0b 1-99\x1f\ufffe", note="crew\x00 on site\x7f")
    story.status(Status.cancelled, "bad\x08 reading")
    found = cap_alerts(story.events, story.notices, templates, SENDER)
    alerts = [etree.fromstring(a.document().encode()) for a in found]  # raises on \x01
    assert_valid(schema, alerts)
    assert text(alerts[0], "cap:info/cap:area/cap:areaDesc") == "Elm St 1-99"
    assert "crew on site" in text(alerts[0], "cap:info/cap:description")
    assert text(alerts[-1], "cap:note") == "Incident cancelled: bad reading"
    document = alerts_document(story.state.id, found)
    assert len(etree.fromstring(document.encode())) == 2


def test_a_notice_that_no_longer_renders_is_left_out_not_the_whole_feed(
    schema: etree.XMLSchema, templates: NoticeTemplates, caplog: pytest.LogCaptureFixture
) -> None:
    story = Story()
    story.area(BOX)
    first = story.notice("main_break", {"en": 1})
    gone = story.notice("etr_update", {"en": 1})
    old = story.notice("etr_update", {"en": 1})
    last = story.notice("restored", {"en": 1})
    # A template taken away since, and a context stored by an older version.
    story.notices[gone] = msgspec.structs.replace(story.notices[gone], template="no_such_template")
    context = {k: v for k, v in story.notices[old].context.items() if k != "utility_name"}
    story.notices[old] = msgspec.structs.replace(story.notices[old], context=context)
    for public in (False, True):
        found = cap_alerts(story.events, story.notices, templates, SENDER, public=public)
        assert_valid(schema, [etree.fromstring(a.document().encode()) for a in found])
        assert [a.identifier for a in found] == [first, last]
        assert found[1].msg_type == "Update"
    assert gone in caplog.text and old in caplog.text
