"""The after-action report: what happened, how fast, who was reached, and whether the
timeline is intact. Pure: the incident, its timeline, delivery figures and the integrity
check in; printable HTML out (Jinja2, autoescaped, no scripts, no external assets).

Measured times:

- *first report*: the earliest ``observed_at`` of the reports linked to the incident, or the
  declaration when none was linked (the report says which);
- *to declaration*: first report -> ``declared``;
- *to first notice*: first report -> the first ``notice_approved`` (the moment the notice
  was released to the senders). Carrier acceptance is recorded per delivery, not on the
  timeline, so it is not what this measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
import msgspec

from incident.core.domain import Incident, TimelineEvent
from incident.core.timeline import Integrity
from incident.deliveries.records import Delivery
from incident.deliveries.states import NO_RECEIPTS, REACHED, DeliveryState, is_final
from incident.review.words import PUSH_SENT, describe_plain, word

__all__ = [
    "OUTCOMES",
    "AfterAction",
    "Milestones",
    "ReachTally",
    "SlaClock",
    "TimelineRow",
    "after_action",
    "milestones",
    "outcome",
    "render_report",
    "sla_clocks",
]

S = DeliveryState
#: What became of a delivery, for a reviewer, in the report's column order. ``reached``: a
#: receipt says so (SMS delivered, call answered); ``no_receipt``: app push handed to the
#: gateway, which gives no delivery receipt, so whether the phone showed it is unknown (never
#: counted as reached); ``not_reached``: final without reaching (failed, undelivered, no
#: answer...); ``on_the_way``: with a sender or the carrier, its outcome still to come;
#: ``waiting``: approved, not yet handed to a sender. The states come from
#: :mod:`incident.deliveries.states` (``REACHED``, ``is_final``), as the console's do.
OUTCOMES: dict[str, str] = {
    "reached": "reached (delivery receipt or call answered)",
    "no_receipt": PUSH_SENT,
    "not_reached": "not reached (failed, undelivered, no answer, busy, cancelled)",
    "on_the_way": "still on the way",
    "waiting": "waiting to be sent",
}


def outcome(channel: str, state: DeliveryState) -> str | None:
    """The :data:`OUTCOMES` key of one delivery; None for a draft (never meant to go out)."""
    if state is S.draft:
        return None
    if state in REACHED:
        return "reached"
    if is_final(channel, state):
        return "no_receipt" if channel == NO_RECEIPTS and state is S.sent else "not_reached"
    return "waiting" if state is S.planned else "on_the_way"


_RANK = {"reached": 2, "no_receipt": 1}
_STATE_ORDER = {state.value: i for i, state in enumerate(DeliveryState)}


class ReachTally:
    """Households reached or not, fed the incident's deliveries page by page. Drafts (of
    notices never approved) were never meant to go out and are left out. A household counts
    as reached when one of its deliveries is (on any channel); else as sent without a receipt
    when an app push went to it; else as never reached."""

    def __init__(self) -> None:
        self._best: dict[str, int] = {}

    def add(self, deliveries: Iterable[Delivery]) -> None:
        for d in deliveries:
            got = outcome(d.channel, d.state)
            if got is None:
                continue
            rank = _RANK.get(got, 0)
            if rank >= self._best.get(d.account_id, 0):
                self._best[d.account_id] = rank

    @property
    def households(self) -> int:
        """Households with at least one delivery of an approved notice."""
        return len(self._best)

    @property
    def reached(self) -> int:
        return sum(1 for rank in self._best.values() if rank == _RANK["reached"])

    def no_receipt(self) -> list[str]:
        """Account ids of households sent an app push (no receipt) and reached no other way."""
        return sorted(a for a, rank in self._best.items() if rank == _RANK["no_receipt"])

    def never_reached(self) -> list[str]:
        """Account ids of households none of whose deliveries reached them, on any channel,
        and sent no app push either."""
        return sorted(a for a, rank in self._best.items() if rank == 0)


class SlaClock(msgspec.Struct, frozen=True, kw_only=True):
    """One SLA of the incident as its timeline recorded it. ``met_late``: breached first,
    then met after all (``met_at`` says when)."""

    sla: str
    title: str
    state: str  # running | met | breached
    due_at: str | None = None
    started_at: str | None = None
    met_at: str | None = None
    breached_at: str | None = None
    escalated_to: list[str] = msgspec.field(default_factory=list)

    @property
    def met_late(self) -> bool:
        if self.state != "breached" or self.met_at is None:
            return False
        return self.due_at is None or datetime.fromisoformat(self.met_at) > datetime.fromisoformat(
            self.due_at
        )


def sla_clocks(events: Iterable[TimelineEvent]) -> list[SlaClock]:
    """The SLA clocks of a timeline, in the order they first appear. The playbook engine
    records ``sla_met`` {sla, due_at, met_at} for a clock met in time and ``sla_breached``
    {sla, title, due_at, escalated_to} once its deadline passed; an ``sla_started`` (older
    timelines, drills) shows a clock still running. A breached clock met later stays
    breached, with both times."""
    clocks: dict[str, SlaClock] = {}
    for e in events:
        sla = e.data.get("sla")
        if not isinstance(sla, str) or e.type not in ("sla_started", "sla_met", "sla_breached"):
            continue
        title = e.data.get("title")
        due = e.data.get("due_at")
        clock = clocks.get(sla) or SlaClock(sla=sla, title=sla, state="running")
        clock = msgspec.structs.replace(
            clock,
            title=str(title) if title else clock.title,
            due_at=str(due) if due else clock.due_at,
        )
        if e.type == "sla_started":
            clock = msgspec.structs.replace(clock, started_at=clock.started_at or e.at)
        elif e.type == "sla_met":
            clock = msgspec.structs.replace(
                clock,
                state="breached" if clock.state == "breached" else "met",
                met_at=str(e.data.get("met_at") or e.at),
            )
        else:
            clock = msgspec.structs.replace(
                clock,
                state="breached",
                breached_at=e.at,
                escalated_to=[str(r) for r in e.data.get("escalated_to") or []],
            )
        clocks[sla] = clock
    return list(clocks.values())


class Milestones(msgspec.Struct, frozen=True, kw_only=True):
    first_report_at: str
    #: "report R-17 (scada)" or "declaration" (no report was linked).
    first_report_from: str
    declared_at: str
    first_notice_planned_at: str | None
    first_notice_approved_at: str | None
    to_declaration_s: float
    to_first_notice_planned_s: float | None
    to_first_notice_s: float | None


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def milestones(incident: Incident, events: Sequence[TimelineEvent]) -> Milestones:
    first_at, first_from = incident.declared_at, "declaration"
    planned = approved = None
    for e in events:
        if e.type == "report_linked" and e.data.get("observed_at"):
            observed = str(e.data["observed_at"])
            if datetime.fromisoformat(observed) < datetime.fromisoformat(first_at):
                first_at = observed
                source = str(e.data.get("source", "?")).replace("_", " ")
                first_from = f"report {e.data.get('report_id')} ({source})"
        elif e.type == "notice_planned" and planned is None:
            planned = e.at
        elif e.type == "notice_approved" and approved is None:
            approved = e.at
    return Milestones(
        first_report_at=first_at,
        first_report_from=first_from,
        declared_at=incident.declared_at,
        first_notice_planned_at=planned,
        first_notice_approved_at=approved,
        to_declaration_s=_seconds(first_at, incident.declared_at),
        to_first_notice_planned_s=_seconds(first_at, planned) if planned else None,
        to_first_notice_s=_seconds(first_at, approved) if approved else None,
    )


class TimelineRow(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    at: str
    type: str
    actor: str
    text: str


class AfterAction(msgspec.Struct, frozen=True, kw_only=True):
    incident: Incident
    generated_at: str
    stage: str | None
    milestones: Milestones
    timeline: list[TimelineRow]
    #: Per channel, per delivery state.
    deliveries: dict[str, dict[str, int]]
    slas: list[SlaClock]
    households_with_deliveries: int
    households_reached: int
    #: Households sent an app push (which has no delivery receipt) and reached no other way.
    no_receipt: list[str]
    never_reached: list[str]
    integrity: Integrity


def after_action(
    incident: Incident,
    events: Sequence[TimelineEvent],
    integrity: Integrity,
    delivery_counts: dict[str, dict[str, int]],
    reach: ReachTally,
    generated_at: str,
) -> AfterAction:
    stage = None
    for e in events:
        if e.type == "stage_entered":
            stage = str(e.data.get("title") or e.data.get("stage"))
    return AfterAction(
        incident=incident,
        generated_at=generated_at,
        stage=stage,
        milestones=milestones(incident, events),
        timeline=[
            TimelineRow(seq=e.seq, at=e.at, type=e.type, actor=e.actor, text=describe_plain(e))
            for e in events
        ],
        deliveries=delivery_counts,
        slas=sla_clocks(events),
        households_with_deliveries=reach.households,
        households_reached=reach.reached,
        no_receipt=reach.no_receipt(),
        never_reached=reach.never_reached(),
        integrity=integrity,
    )


# --- HTML -------------------------------------------------------------------------------

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    sign, s = ("-" if seconds < 0 else ""), round(abs(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min {secs:02d} s"
    return f"{sign}{secs} s"


def render_report(report: AfterAction, timezone: str = "UTC") -> str:
    """The report as one printable HTML page; times shown in ``timezone`` (IANA)."""
    tz = ZoneInfo(timezone)

    def when(iso: str | None) -> str:
        if not iso:
            return "—"
        local = datetime.fromisoformat(iso).astimezone(tz)
        return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"

    channels = sorted(report.deliveries)
    # Per channel: the outcome groups, and each state in plain words (push ``sent`` as sent
    # with no delivery receipt, never as delivered).
    grouped: dict[str, dict[str, int]] = {}
    details: dict[str, list[tuple[str, int]]] = {}
    for channel in channels:
        by_state = report.deliveries[channel]
        groups = dict.fromkeys(OUTCOMES, 0)
        for state, n in by_state.items():
            got = outcome(channel, _state(state))
            if got is not None:
                groups[got] += n
        grouped[channel] = groups
        details[channel] = [
            (PUSH_SENT if channel == NO_RECEIPTS and state == S.sent else word("delivery", state), n)
            for state, n in sorted(by_state.items(), key=lambda sn: (_STATE_ORDER.get(sn[0], 99), sn[0]))
            if n and state != S.draft
        ]
    columns = [key for key in OUTCOMES if any(grouped[c][key] for c in channels)]
    template = _ENV.get_template("report.html.j2")
    return template.render(
        r=report,
        i=report.incident,
        m=report.milestones,
        when=when,
        duration=_duration,
        word=word,
        outcomes=OUTCOMES,
        columns=columns,
        grouped=grouped,
        details=details,
        channels=channels,
        timezone=timezone,
    )


def _state(value: str) -> DeliveryState:
    try:
        return DeliveryState(value)
    except ValueError:
        return S.unknown
