"""What a notice says: the typed rendering context and the variables templates see. Pure.

Templates see only notice-level facts, never a household's, so the text of one notice is
the same for every household that reads the same language on the same channel (which is
what lets :class:`incident.notices.templates.NoticeCache` render once per language).

Variables of every template (all strings, ``None`` or ``bool``; times already formatted in
the template's language and the context's time zone):

    utility_name, utility_phone, utility_url   who is speaking, and where to learn more
    utility        water | gas | heat
    kind           the incident kind (main_break, gas_leak, ...)
    incident_id    e.g. INC-2026-000001
    area           where: the area or streets, in the template's language when given
    note           the dispatcher's extra sentence, "" when none (in the template's language
                   when given)
    advisory       boil_water | do_not_drink | do_not_use | None
    etr            estimated restoration, e.g. "Nov 22, 2:30 PM" / "11月22日 14:30", or None
    start, end     planned work window, formatted like etr, or None
    drill          True for an exercise (the renderer also marks the text itself)
    language       the template language used, e.g. zh-CN
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

import msgspec

from incident.core.domain import Kind, Utility
from incident.notices.language import format_time, zone

__all__ = ["VARIABLES", "Advisory", "NoticeContext", "TemplateKey", "template_variables"]


class TemplateKey(StrEnum):
    """The contract's notice templates."""

    main_break = "main_break"
    unplanned_outage = "unplanned_outage"
    planned_outage = "planned_outage"
    low_pressure = "low_pressure"
    boil_water = "boil_water"
    do_not_drink = "do_not_drink"
    do_not_use = "do_not_use"
    gas_leak = "gas_leak"
    heat_outage = "heat_outage"
    etr_update = "etr_update"
    restored = "restored"
    advisory_lifted = "advisory_lifted"
    follow_up = "follow_up"


class Advisory(StrEnum):
    """Water-quality advisories, mildest first."""

    boil_water = "boil_water"
    do_not_drink = "do_not_drink"
    do_not_use = "do_not_use"


class NoticeContext(msgspec.Struct, frozen=True, kw_only=True):
    """The facts of one notice. Times must carry a time zone; ``timezone`` is the IANA zone
    in which households read them (e.g. ``Asia/Shanghai``)."""

    utility_name: str
    utility_phone: str
    utility_url: str
    incident_id: str
    kind: Kind
    utility: Utility
    area: str
    #: ``area`` in other languages, by template language (``{"en": "Elm St 1-99"}``).
    area_i18n: Mapping[str, str] = msgspec.field(default_factory=dict)
    note: str = ""
    #: ``note`` in other languages, by template language.
    note_i18n: Mapping[str, str] = msgspec.field(default_factory=dict)
    advisory: Advisory | None = None
    etr: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    drill: bool = False
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        for name in ("etr", "start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} {moment.isoformat()} has no time zone")


#: Every name a template may use.
VARIABLES = frozenset(
    {
        "utility_name", "utility_phone", "utility_url", "utility", "kind", "incident_id", "area",
        "note", "advisory", "etr", "start", "end", "drill", "language",
    }
)  # fmt: skip


def template_variables(context: NoticeContext, language: str) -> dict[str, str | bool | None]:
    """The namespace a template of ``language`` renders with (see the module docstring)."""
    tz = zone(context.timezone)

    def when(moment: datetime | None) -> str | None:
        return None if moment is None else format_time(moment, language, tz)

    return {
        "utility_name": context.utility_name,
        "utility_phone": context.utility_phone,
        "utility_url": context.utility_url,
        "utility": str(context.utility),
        "kind": str(context.kind),
        "incident_id": context.incident_id,
        "area": context.area_i18n.get(language, context.area),
        "note": context.note_i18n.get(language, context.note),
        "advisory": None if context.advisory is None else str(context.advisory),
        "etr": when(context.etr),
        "start": when(context.start),
        "end": when(context.end),
        "drill": context.drill,
        "language": language,
    }
