"""The after-action report: figures computed from the timeline and deliveries, and the
printable HTML made of them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from markupsafe import escape

from incident.core import domain
from incident.core.domain import Declaration, Kind, Severity, Status, TimelineEvent, Utility
from incident.core.timeline import seal, verify
from incident.deliveries.records import Delivery
from incident.deliveries.states import DeliveryState
from incident.review.after_action import ReachTally, after_action, milestones, render_report, sla_clocks
from incident.review.words import describe_plain

T0 = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)


class Story:
    def __init__(self, title: str = "Main break on Elm St", drill: bool = False) -> None:
        self.now = T0
        declaration = Declaration(
            kind=Kind.main_break, utility=Utility.water, title=title, severity=Severity.high, drill=drill
        )
        drafts = domain.declare(declaration, "alice", owner="alice")
        self.state, self.events = seal("INC-2026-000009", None, drafts, T0)

    def add(self, type_: str, minutes: float = 5, actor: str = "alice", **data: Any) -> TimelineEvent:
        self.now += timedelta(minutes=minutes)
        self.state, more = seal(
            self.state.id, self.state, [domain.EventDraft(type=type_, actor=actor, data=data)], self.now
        )
        self.events += more
        return more[-1]

    def status(self, to: Status, reason: str | None = None) -> None:
        self.now += timedelta(minutes=5)
        self.state, more = seal(
            self.state.id, self.state, domain.change_status(self.state, to, "alice", reason), self.now
        )
        self.events += more


def delivery(account: str, channel: str, state: DeliveryState, seq: int) -> Delivery:
    return Delivery(
        delivery_id=f"INC-2026-000009-N1:{seq}", notice_id="INC-2026-000009-N1", incident_id="INC-2026-000009",
        seq=seq, channel=channel, address=f"+1502555{seq:04d}", account_id=account, language="en",
        priority_rank=9, state=state,
    )  # fmt: skip


S = DeliveryState


def test_households_never_reached_on_any_channel() -> None:
    rows = [
        delivery("A-1", "sms", S.undelivered, 1),
        delivery("A-1", "voice", S.completed, 2),  # the fallback call got through
        delivery("B-2", "sms", S.delivered, 3),
        delivery("C-3", "push", S.sent, 4),  # push has no receipts: sent, never counted as reached
        delivery("D-4", "sms", S.failed, 5),
        delivery("D-4", "voice", S.no_answer, 6),
        delivery("E-5", "sms", S.draft, 7),  # a notice never approved: never meant to go out
        delivery("F-6", "sms", S.sent, 8),  # an SMS counts once delivered, not when sent
        delivery("G-7", "voice", S.busy, 9),
        delivery("H-8", "voice", S.confirmed, 10),
    ]
    tally = ReachTally()
    tally.add(rows[:5])  # page by page, a household split across pages
    tally.add(rows[5:])
    assert tally.households == 7
    assert tally.reached == 3  # A-1, B-2, H-8
    assert tally.no_receipt() == ["C-3"]
    assert tally.never_reached() == ["D-4", "F-6", "G-7"]
    tally.add([delivery("C-3", "sms", S.delivered, 11), delivery("G-7", "push", S.sent, 12)])
    assert tally.reached == 4 and tally.no_receipt() == ["G-7"] and tally.never_reached() == ["D-4", "F-6"]


def test_sla_clocks_from_the_events_the_playbook_engine_records() -> None:
    """The engine records ``sla_met`` and ``sla_breached`` (no ``sla_started``): the clocks
    come from those, in the order they first appear."""
    story = Story()
    due = (T0 + timedelta(minutes=30)).isoformat()
    met_at = (T0 + timedelta(minutes=20)).isoformat()
    late_at = (T0 + timedelta(minutes=50)).isoformat()
    story.add("sla_met", sla="first_notice", due_at=due, met_at=met_at)
    breached = story.add(
        "sla_breached", sla="on_site", title="Crew on site", due_at=due, escalated_to=["command"]
    )
    story.add("sla_breached", sla="repair", title="Repair within 24 h", due_at=due, escalated_to=[])
    story.add("sla_met", sla="repair", due_at=due, met_at=late_at)
    found = sla_clocks(story.events)
    assert [c.sla for c in found] == ["first_notice", "on_site", "repair"]
    clocks = {c.sla: c for c in found}

    first = clocks["first_notice"]
    assert (first.state, first.due_at, first.met_at, first.met_late) == ("met", due, met_at, False)
    assert first.title == "first_notice"  # sla_met carries no title
    assert first.breached_at is None and first.escalated_to == []

    on_site = clocks["on_site"]
    assert (on_site.state, on_site.title, on_site.due_at) == ("breached", "Crew on site", due)
    assert on_site.breached_at == breached.at and on_site.escalated_to == ["command"]
    assert on_site.met_at is None and not on_site.met_late

    repair = clocks["repair"]
    assert (repair.state, repair.met_at, repair.met_late) == ("breached", late_at, True)
    assert sla_clocks(Story().events) == []


def test_a_started_clock_without_an_outcome_is_running() -> None:
    story = Story()
    due = (T0 + timedelta(minutes=30)).isoformat()
    story.add("sla_started", sla="repair", title="Repair within 24 h", due_at=due)
    [clock] = sla_clocks(story.events)
    assert (clock.state, clock.title, clock.due_at) == ("running", "Repair within 24 h", due)
    assert clock.started_at == story.events[-1].at


def test_times_run_from_the_earliest_report_or_the_declaration() -> None:
    story = Story()
    without = milestones(story.state, story.events)
    assert without.first_report_from == "declaration" and without.to_declaration_s == 0
    assert without.first_notice_approved_at is None and without.to_first_notice_s is None
    assert without.to_first_notice_planned_s is None

    later = (T0 - timedelta(minutes=3)).isoformat()
    earliest = (T0 - timedelta(minutes=12)).isoformat()
    story.add(
        "report_linked", report_id="scada-7", kind="main_break", source="scada", observed_at=later, reason="r"
    )
    story.add("report_linked", report_id="cc-2", kind="main_break", source="call_centre", observed_at=earliest,
              reason="r")  # fmt: skip
    planned = story.add("notice_planned", notice_id="INC-2026-000009-N1", template="main_break")
    approved = story.add("notice_approved", notice_id="INC-2026-000009-N1", deliveries=3)
    story.add("notice_approved", notice_id="INC-2026-000009-N2", deliveries=3)
    m = milestones(story.state, story.events)
    assert m.first_report_at == earliest and m.first_report_from == "report cc-2 (call centre)"
    assert m.to_declaration_s == 12 * 60
    assert m.first_notice_planned_at == planned.at and m.first_notice_approved_at == approved.at
    assert m.to_first_notice_planned_s == (datetime.fromisoformat(planned.at) - T0).total_seconds() + 12 * 60
    assert m.to_first_notice_s == (datetime.fromisoformat(approved.at) - T0).total_seconds() + 12 * 60


def _render(
    story: Story, tally: ReachTally | None = None, counts: dict[str, dict[str, int]] | None = None
) -> str:
    integrity = verify(story.state.id, story.events, story.state)
    report = after_action(
        story.state, story.events, integrity, counts or {}, tally or ReachTally(), story.now.isoformat()
    )
    return render_report(report, "Asia/Shanghai")


def test_the_report_page() -> None:
    story = Story(title="Break <script>alert(1)</script> & more")
    story.add("note_added", text="Valve V-12 <b>closed</b>")
    story.add("notice_planned", notice_id="INC-2026-000009-N1", template="main_break")
    story.add("notice_approved", notice_id="INC-2026-000009-N1", deliveries=3)
    story.status(Status.active)
    tally = ReachTally()
    tally.add([delivery("D-4", "sms", S.failed, 1), delivery("B-2", "sms", S.delivered, 2)])
    html = _render(story, tally, {"sms": {"delivered": 1, "failed": 1}, "voice": {"planned": 2}})

    # Autoescaped: operator text cannot inject markup.
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "&lt;b&gt;closed&lt;/b&gt;" in html
    # Printable and self-contained: a print stylesheet, no scripts, no external assets.
    assert "@media print" in html and "@page" in html
    assert not re.search(r"<script|<link|\bsrc=|url\(|https?://", html)
    # Every event, in plain language, in the incident's time zone.
    for event in story.events:
        assert str(escape(describe_plain(event))) in html
    assert "2026-11-22 16:15:00 CST" in html  # declared 08:15 UTC, shown in Shanghai
    # Deliveries by channel and status, households never reached by account, no numbers.
    # Columns: reached, not reached, waiting (outcomes with nothing in them left out).
    assert re.search(
        r'<td>SMS</td>\s*<td class="n">1</td>\s*<td class="n">1</td>\s*<td class="n">0</td>', html
    )
    assert re.search(
        r'<td>voice call</td>\s*<td class="n">0</td>\s*<td class="n">0</td>\s*<td class="n">2</td>', html
    )
    assert "D-4" in html and "B-2" not in html and "+1502555" not in html
    assert re.search(r"<strong>1</strong> of 2 households", html)
    assert "SLA clocks: none declared." in html
    assert "Intact: 5 events" in html
    assert "DRILL" not in html


def test_a_broken_chain_and_a_drill_show_on_the_report() -> None:
    story = Story(drill=True)
    story.add("note_added", text="first")
    story.add("note_added", text="second")
    tampered = msgspec.structs.replace(story.events[1], data={"text": "rewritten"})
    story.events[1] = tampered
    html = _render(story)
    assert "BROKEN" in html and "event 2: content does not match its hash (altered)" in html
    assert "DRILL — this incident was an exercise." in html


def test_sla_table_on_the_report() -> None:
    story = Story()
    due = (T0 + timedelta(minutes=30)).isoformat()  # 16:45 in Shanghai
    story.add("sla_met", sla="first_notice", due_at=due, met_at=(T0 + timedelta(minutes=20)).isoformat())
    story.add("sla_breached", sla="on_site", title="Crew <b>on site</b>", due_at=due,
              escalated_to=["command", "duty_manager"])  # fmt: skip
    story.add("sla_breached", sla="repair", title="Repair", due_at=due, escalated_to=["command"])
    story.add("sla_met", sla="repair", due_at=due, met_at=(T0 + timedelta(minutes=50)).isoformat())
    story.status(Status.cancelled, "false alarm")
    html = _render(story)
    assert "none declared" not in html
    assert re.search(r"1 met,\s+2 breached \(1 met late\)\.", html)
    assert "still running" not in html and "<th>Started</th>" not in html
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-sla="([^"]+)">(.*?)</tr>', html, re.S)}
    assert set(rows) == {"first_notice", "on_site", "repair"}
    assert 'class="ok">met<' in rows["first_notice"]
    assert "2026-11-22 16:45:00 CST" in rows["first_notice"]  # due
    assert "2026-11-22 16:35:00 CST" in rows["first_notice"]  # met
    assert 'class="bad">breached<' in rows["on_site"] and "command, duty manager" in rows["on_site"]
    assert "Crew &lt;b&gt;on site&lt;/b&gt;" in rows["on_site"]
    assert 'class="bad">breached, met late at 2026-11-22 17:05:00 CST<' in rows["repair"]


def test_an_incident_without_slas_says_none_declared() -> None:
    story = Story()
    story.add("note_added", text="no playbook here")
    assert "SLA clocks: none declared." in _render(story)


RAW_CODE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def visible_text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_the_report_in_plain_words_with_push_sent_apart_from_reached() -> None:
    """App push has no delivery receipt: ``sent`` is not "delivered" nor "reached"; and no
    code (``unplanned_outage``, ``stage_entered``, ``no_answer``) reaches the reader."""
    story = Story()
    story.add("report_linked", report_id="cc-2", kind="unplanned_outage", source="call_centre",
              observed_at=(T0 - timedelta(minutes=3)).isoformat(), reason="same street")  # fmt: skip
    story.add(
        "stage_entered",
        stage="assess",
        title="Assess and isolate",
        playbook="water_main_break",
        by="playbook",
    )
    story.add("area_changed", op="replace", part={"method": "isolation", "pipe": "P-10"}, parts=[], geometry=None,
              households_before=0, households_after=3)  # fmt: skip
    story.add("notice_planned", notice_id="INC-2026-000009-N1", template="unplanned_outage",
              channels=["sms", "push"], households=3)  # fmt: skip
    story.add("notice_approved", notice_id="INC-2026-000009-N1", deliveries=4)
    story.add("notice_sent", notice_id="INC-2026-000009-N1", template="unplanned_outage")
    story.add("sla_breached", sla="first_notice", due_at=T0.isoformat(), escalated_to=["duty_manager"])
    story.add("advisory_set", advisory="boil_water")
    story.add("household_reply", actor="household", account_id="A-1", channel="sms", text="thanks")
    story.status(Status.active)
    tally = ReachTally()
    tally.add([
        delivery("A-1", "sms", S.delivered, 1), delivery("A-1", "push", S.sent, 2),
        delivery("C-3", "push", S.sent, 3), delivery("D-4", "voice", S.no_answer, 4),
    ])  # fmt: skip
    counts = {"sms": {"delivered": 1}, "push": {"sent": 2}, "voice": {"no_answer": 1}}
    html = _render(story, tally, counts)

    text = visible_text(html)
    assert RAW_CODE.findall(text) == []
    for plain in ("Stage entered", "Notice planned", "unplanned outage", "main break", "boil water", "no answer",
                  "Household replied", "Deadline missed", "call centre", "duty manager"):  # fmt: skip
        assert plain in text, plain
    # Push sent: its own column and its own households, never reached nor delivered.
    push = re.search(r'<tr data-channel="push">(.*?)</tr>', html, re.S)
    assert push is not None
    headers = re.findall(r'<th class="n" data-outcome="(\w+)">', html)
    cells = re.findall(r'<td class="n">(\d+)</td>', push.group(1))
    assert dict(zip(headers, cells, strict=False)) == {"reached": "0", "no_receipt": "2", "not_reached": "0"}
    assert "push: 2 sent (no delivery receipt)" in text
    assert re.search(r'id="reached">1<', html) and re.search(r'id="no-receipt">1<', html)
    assert "<li>C-3</li>" in html and "<strong>1</strong> of 3 households" in html  # D-4 never reached
