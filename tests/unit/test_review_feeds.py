"""The public feeds' pure builders and the conditional-request rule."""

from __future__ import annotations

import feedparser

from incident.api.feeds import not_modified
from incident.review.cap import CapAlert
from incident.review.feeds import FeedInfo, atom_feed, built, entry_id

INFO = FeedInfo(feed_id="riverside.example:public-alerts", self_url="cap.atom", title="Riverside: alerts",
                author="Riverside Water", web="https://riverside.example/outage")  # fmt: skip


def alert(identifier: str, sent: str, msg_type: str = "Alert", **gist: str) -> CapAlert:
    xml = f'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>{identifier}</identifier></alert>'
    return CapAlert(
        identifier=identifier, sender="riverside.example", sent=sent, msg_type=msg_type, xml=xml, **gist
    )


def link(a: CapAlert) -> str:
    return f"cap/{a.identifier}.xml"


def test_relative_links_resolve_against_the_feed_and_entries_are_newest_first() -> None:
    alerts = [
        alert("INC-2026-000001-N1", "2026-11-22T08:00:00-00:00", title="Water main break", summary="Water off",
              language="en"),
        alert("INC-2026-000001-N2", "2026-11-22T09:00:00-00:00", "Update", title="ETR 18:00", summary="Back by 6"),
        alert("INC-2026-000001-cancel", "2026-11-22T10:00:00-00:00", "Cancel", title="Incident closed: fixed",
              summary="Incident closed: fixed"),
    ]  # fmt: skip
    body = atom_feed(INFO, alerts, link)
    feed = feedparser.parse(
        body,
        response_headers={
            "content-location": "https://outages.example/public/feeds/cap.atom",
            "content-type": "application/atom+xml; charset=utf-8",
        },
    )
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "Riverside: alerts" and feed.feed.updated == "2026-11-22T10:00:00Z"
    assert [e.title for e in feed.entries] == [
        "Incident closed: fixed",
        "Update: ETR 18:00",
        "Water main break",
    ]
    assert [e.links[0].href for e in feed.entries][-1] == (
        "https://outages.example/public/feeds/cap/INC-2026-000001-N1.xml"
    )
    assert {e.links[0].type for e in feed.entries} == {"application/cap+xml"}
    assert [e.id for e in feed.entries] == [entry_id(a) for a in reversed(alerts)]
    assert entry_id(alerts[0]) == entry_id(alert("INC-2026-000001-N1", "2026-11-23T00:00:00-00:00"))
    assert len({e.id for e in feed.entries}) == 3


def test_an_empty_feed_is_the_same_bytes_every_time() -> None:
    one, two = atom_feed(INFO, [], link), atom_feed(INFO, [], link)
    assert one == two
    feed = feedparser.parse(one)
    assert not feed.bozo and feed.entries == [] and feed.feed.updated == "1970-01-01T00:00:00Z"


def test_if_none_match_decides_and_if_modified_since_must_be_our_date() -> None:
    feed = built(b"<feed/>", "2026-11-22T08:00:00.5+00:00", "application/atom+xml")
    assert feed.last_modified == "Sun, 22 Nov 2026 08:00:00 GMT"
    assert not_modified(feed.etag, None, feed)
    assert not_modified(f'"a", W/{feed.etag}', None, feed)
    assert not_modified("*", None, feed)
    assert not not_modified('"stale"', feed.last_modified, feed)
    assert not_modified(None, feed.last_modified, feed)
    assert not not_modified(None, "Sun, 22 Nov 2026 09:00:00 GMT", feed)  # not a date we gave
    for junk in ("", "yesterday", "Sun, 99 Nov 2026 99:00:00 GMT", "\x00" * 50, "9" * 200):
        assert not not_modified(None, junk, feed)


def test_a_cancel_entry_says_its_own_words_and_an_update_says_it_is_one() -> None:
    alerts = [
        alert("I-1-N2", "2026-11-22T09:00:00-00:00", "Update", title="ETR 18:00", summary="Back by 6"),
        alert("I-1-cancel", "2026-11-22T10:00:00-00:00", "Cancel", title="事件已结束。", summary="事件已结束。",
              language="zh-CN"),
    ]  # fmt: skip
    feed = feedparser.parse(atom_feed(INFO, alerts, link))
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == ["事件已结束。", "Update: ETR 18:00"]


def test_characters_xml_cannot_hold_never_break_the_feed() -> None:
    alerts = [alert("I-1-N1", "2026-11-22T09:00:00-00:00", title="Elm\x01 St\x0b", summary="Water\x00 off\ud800",
                    language="en")]  # fmt: skip
    body = atom_feed(INFO, alerts, link)
    feed = feedparser.parse(body)
    assert not feed.bozo, feed.bozo_exception
    assert [(e.title, e.summary) for e in feed.entries] == [("Elm St", "Water off")]
