"""Plain words for the codes a reviewer would otherwise read in the after-action report
(``unplanned_outage``, ``stage_entered``, ``no_answer``). Pure.

Every event type the service appends, every incident status, kind, severity, utility,
channel and delivery state has a word here; tests/unit/test_console_i18n.py checks the lists
against the service's own sources (and the console's dictionaries against the same lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from incident.core.domain import TimelineEvent, describe

__all__ = ["WORDS", "describe_plain", "word"]

WORDS: Mapping[str, Mapping[str, str]] = {
    "event": {
        "declared": "Declared",
        "status_changed": "Status changed",
        "note_added": "Note",
        "handed_over": "Handed over",
        "severity_changed": "Severity changed",
        "report_linked": "Report linked",
        "confirmed": "Confirmed",
        "area_changed": "Area changed",
        "stage_entered": "Stage entered",
        "notice_planned": "Notice planned",
        "notice_approved": "Notice approved",
        "notice_held": "Notice held: a fact is missing",
        "notice_approval_recorded": "First approval of a notice recorded",
        "area_described": "Area described for households",
        "made_public": "Shown to residents",
        "made_internal": "Taken off the public page",
        "notice_sent": "Notice sent",
        "sla_started": "Deadline started",
        "sla_met": "Deadline met",
        "sla_breached": "Deadline missed",
        "etr_set": "Restoration time set",
        "etr_requested": "Restoration time asked for",
        "advisory_set": "Advisory issued",
        "advisory_lifted": "Advisory lifted",
        "page_sent": "On-call paged",
        "household_reply": "Household replied",
    },
    "status": {
        "declared": "declared",
        "active": "active",
        "restoring": "restoring",
        "monitoring": "monitoring",
        "closed": "closed",
        "cancelled": "cancelled",
    },
    "kind": {
        "main_break": "main break",
        "unplanned_outage": "unplanned outage",
        "planned_outage": "planned outage",
        "low_pressure": "low pressure",
        "contamination": "contamination",
        "gas_leak": "gas leak",
        "heat_outage": "heat outage",
    },
    "severity": {"low": "low", "medium": "medium", "high": "high", "critical": "critical"},
    "utility": {"water": "water", "gas": "gas", "heat": "district heating"},
    "channel": {"sms": "SMS", "voice": "voice call", "push": "app push", "email": "email"},
    "advisory": {"boil_water": "boil water", "do_not_drink": "do not drink", "do_not_use": "do not use"},
    "template": {
        "main_break": "main break",
        "unplanned_outage": "unplanned outage",
        "planned_outage": "planned outage",
        "low_pressure": "low pressure",
        "boil_water": "boil-water advisory",
        "do_not_drink": "do-not-drink advisory",
        "do_not_use": "do-not-use advisory",
        "gas_leak": "gas leak",
        "heat_outage": "heat outage",
        "etr_update": "restoration time update",
        "restored": "service restored",
        "advisory_lifted": "advisory lifted",
        "follow_up": "follow-up",
    },
    "delivery": {
        "draft": "draft (never approved)",
        "planned": "waiting to be sent",
        "queued": "queued",
        "claimed": "being sent",
        "sending": "being sent",
        "retry": "to be retried",
        "unknown": "outcome unknown",
        "accepted": "accepted by the carrier",
        "sent": "sent, delivery receipt still to come",
        "delivered": "delivered",
        "undelivered": "undelivered",
        "failed": "failed",
        "ringing": "ringing",
        "answered": "answered",
        "completed": "call completed",
        "no_answer": "no answer",
        "busy": "busy",
        "confirmed": "confirmed by the household",
        "cancelled": "cancelled",
    },
    "method": {
        "drawn": "drawn",
        "zones": "zones",
        "around": "radius around a point",
        "isolation": "isolation",
    },
    "op": {"replace": "replaced", "add": "added to", "remove": "removed from"},
}

#: App push has no delivery receipt: its ``sent`` is the last word, not a receipt to wait for.
PUSH_SENT = "sent (no delivery receipt)"


def word(group: str, code: Any) -> str:
    """The plain word for ``code``; an unknown code with its underscores as spaces."""
    if code is None or code == "":
        return "—"
    text = str(code)
    return WORDS.get(group, {}).get(text, text.replace("_", " "))


def _reason(d: Mapping[str, Any]) -> str:
    return f" ({d['reason']})" if d.get("reason") else ""


def describe_plain(event: TimelineEvent) -> str:
    """One line about an event in plain words (no codes); :func:`incident.core.domain.describe`
    for the events whose line has none."""
    d = event.data
    match event.type:
        case "declared":
            drill = "DRILL: " if d.get("drill") else ""
            return (
                f"{drill}declared a {word('kind', d.get('kind'))} ({word('utility', d.get('utility'))}), "
                f"severity {word('severity', d.get('severity'))}: {d.get('title')}"
            )
        case "status_changed":
            return f"status {word('status', d.get('from'))} → {word('status', d.get('to'))}{_reason(d)}"
        case "severity_changed":
            return f"severity {word('severity', d.get('from'))} → {word('severity', d.get('to'))}{_reason(d)}"
        case "report_linked":
            return (
                f"report {d.get('report_id')} ({word('kind', d.get('kind'))}, from "
                f"{str(d.get('source', '?')).replace('_', ' ')}) linked{_reason(d)}"
            )
        case "area_changed":
            part = d.get("part") or {}
            how = word("method", part.get("method", "drawn"))
            if part.get("method") == "isolation":
                how = f"isolation of pipe {part.get('pipe')}"
            elif part.get("method") == "zones":
                how = f"zones {', '.join(part.get('zones', []))}"
            op = word("op", d.get("op", "replace"))
            return f"area {op} ({how}): households {d.get('households_before')} → {d.get('households_after')}"
        case "stage_entered":
            return f"stage “{d.get('title') or d.get('stage')}”{_reason(d)}"
        case "notice_planned":
            channels = ", ".join(word("channel", c) for c in d.get("channels", []))
            households = f", {d['households']} households" if "households" in d else ""
            template = word("template", d.get("template"))
            return f"notice {d.get('notice_id')} planned: {template} by {channels}{households}"
        case "notice_sent":
            template = word("template", d.get("template"))
            return f"notice {d.get('notice_id')} ({template}) handed to the carriers"
        case "advisory_set":
            return f"advisory in force: {word('advisory', d.get('advisory'))}{_reason(d)}"
        case "advisory_lifted":
            lifted = f": {word('advisory', d['advisory'])}" if d.get("advisory") else ""
            return f"advisory lifted{lifted}{_reason(d)}"
        case "page_sent":
            rota = str(d.get("rota")).replace("_", " ")
            return f"paged {rota} ({d.get('people', 0)} people): {d.get('text', '')}"
        case "sla_started" | "sla_met" | "sla_breached":
            title = d.get("title") or str(d.get("sla", "")).replace("_", " ")
            due = f" (due {d['due_at']})" if d.get("due_at") else ""
            if event.type == "sla_started":
                return f"deadline “{title}” started{due}"
            if event.type == "sla_met":
                return f"deadline “{title}” met{due}"
            escalated = ", ".join(str(r).replace("_", " ") for r in d.get("escalated_to", [])) or "nobody"
            return f"DEADLINE MISSED: “{title}”{due}; escalated to {escalated}"
        case "household_reply":
            channel = word("channel", d.get("channel"))
            return f"household {d.get('account_id')} replied by {channel}: {d.get('text', '')}"
    return describe(event)
