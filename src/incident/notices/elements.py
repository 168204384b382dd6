"""The elements a drinking-water notice must contain, and how they are recognised. Pure.

The US EPA Public Notification Rule (40 CFR 141.205(a)) lists what every public notice of a
drinking-water situation says. Chinese rules ask water suppliers to inform the public of a
water-quality emergency promptly without such a list, so the same elements are checked in
every language: a translation must not say less than the original. For the water-quality notices
(``boil_water``, ``do_not_drink``, ``do_not_use``) :data:`REQUIRED` names the elements each
channel must carry:

    long channels  email, voice     every element of :class:`Element`
    short channels sms, push        what to do, the affected area, and a contact (phone or
                                    web address); the rest is one call or click away

An element is recognised in the *rendered* text, not in the template source: a translation
that drops a sentence drops its words, whereas a comment or annotation next to the sentence
would survive the deletion. Three elements are facts of the context, checked by value (the
area, the utility's phone or web address, and the ETR when one is set); the others by phrases
of each language (:data:`PHRASES`; any one of an element's phrases, case-insensitively). The
phrases are chosen so that each belongs to one sentence of the shipped templates; an operator
who rewords a sentence keeps one of them, or adds one here.

Languages with no phrases cannot be checked; the checker says so once per language.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from incident.notices.context import TemplateKey

__all__ = [
    "DESCRIPTIONS",
    "LONG_CHANNELS",
    "PHRASES",
    "REQUIRED",
    "SHORT_CHANNELS",
    "WHAT_TO_DO",
    "Element",
    "checked_language",
    "missing_elements",
]


class Element(StrEnum):
    """A required part of a drinking-water notice, with its 40 CFR 141.205(a) item."""

    situation = "situation"  # (1) what happened: the violation or situation
    occurred = "occurred"  # (2) when it occurred (or took effect)
    health_effects = "health_effects"  # (3) the potential adverse health effects
    at_risk = "at_risk"  # (4) the population at risk, sensitive groups included
    area = "area"  # (4) who is affected: the area
    what_to_do = "what_to_do"  # (5), (6) whether to use another water supply, what to do
    actions_taken = "actions_taken"  # (7) what is being done to correct it
    resolution = "resolution"  # (8) when it is expected to be resolved
    contact = "contact"  # (9) whom to contact: phone or web address


#: What each element means, for the checker's messages.
DESCRIPTIONS: Mapping[Element, str] = {
    Element.situation: "what happened",
    Element.occurred: "when it occurred or took effect",
    Element.health_effects: "the potential health effects",
    Element.at_risk: "who is at greater risk",
    Element.area: "the affected area",
    Element.what_to_do: "what to do",
    Element.actions_taken: "what the utility is doing",
    Element.resolution: "when it is expected to be resolved",
    Element.contact: "a phone number or web address to contact",
}

LONG_CHANNELS = frozenset({"email", "voice"})
SHORT_CHANNELS = frozenset({"sms", "push"})
_SHORT = frozenset({Element.what_to_do, Element.area, Element.contact})
_ALL = frozenset(Element)

#: The elements each notice key must carry on each channel (by channel name).
REQUIRED: Mapping[str, Mapping[str, frozenset[Element]]] = {
    key: {**dict.fromkeys(LONG_CHANNELS, _ALL), **dict.fromkeys(SHORT_CHANNELS, _SHORT)}
    for key in (TemplateKey.boil_water, TemplateKey.do_not_drink, TemplateKey.do_not_use)
}

#: Phrases that recognise an element, by language (any one suffices; case-insensitive).
PHRASES: Mapping[str, Mapping[Element, tuple[str, ...]]] = {
    "en": {
        Element.situation: (
            "may have entered", "may be contaminated", "has been contaminated", "was found in",
        ),
        Element.occurred: (
            "takes effect", "took effect", "effective immediately", "in effect since", "occurred on",
            "occurred at",
        ),
        Element.health_effects: ("diarrhea", "diarrhoea", "nausea", "vomiting", "health effects"),
        Element.at_risk: ("infants", "young children", "older adults", "elderly", "immune", "pregnant"),
        Element.actions_taken: (
            "our crews", "crews are", "we are repairing", "we are flushing", "we are testing",
            "we are working", "we are investigating",
        ),
        Element.resolution: (
            "expect to lift", "is lifted", "will be lifted", "expected to be resolved", "expect to resolve",
        ),
    },
    "zh-CN": {
        Element.situation: ("可能已进入", "可能受到污染", "可能已被污染", "检测发现", "检出"),
        Element.occurred: ("即日起", "立即生效", "起生效", "发生于"),
        Element.health_effects: ("腹泻", "恶心", "呕吐", "危害健康", "健康影响"),
        Element.at_risk: ("婴幼儿", "老年人", "免疫力", "孕妇"),
        Element.actions_taken: ("抢修人员", "正在抢修", "正在修复", "正在冲洗", "正在检测", "正在排查"),
        Element.resolution: ("预计解除", "解除时间确定后", "解除后", "另行通知"),
    },
}  # fmt: skip

_BOIL = {
    "en": ("rolling boil", "boil tap water", "boil your tap water", "boil the water"),
    "zh-CN": ("烧开", "沸腾1分钟", "煮沸1分钟"),
}
_ANOTHER_SUPPLY = {"en": ("bottled water", "safe source of water"), "zh-CN": ("瓶装水", "安全水源")}

#: What to do, by key and language: boil the water, or use another supply.
WHAT_TO_DO: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    TemplateKey.boil_water: _BOIL,
    TemplateKey.do_not_drink: _ANOTHER_SUPPLY,
    TemplateKey.do_not_use: _ANOTHER_SUPPLY,
}


def checked_language(language: str) -> str | None:
    """The phrase table for a template language: itself, or its primary subtag (``en-GB`` ->
    ``en``); None when there is none (then the elements cannot be checked)."""
    if language in PHRASES:
        return language
    primary = language.split("-", 1)[0]
    return primary if primary in PHRASES else None


def _has(text: str, phrases: tuple[str, ...]) -> bool:
    return any(phrase.casefold() in text for phrase in phrases)


def missing_elements(
    key: str, channel: str, language: str, text: str, variables: Mapping[str, object]
) -> list[Element]:
    """The required elements of ``key`` on ``channel`` that ``text`` (rendered in ``language``
    with ``variables``) lacks, in :class:`Element` order; empty when none are required or the
    language has no phrases (see :func:`checked_language`)."""
    required = REQUIRED.get(key, {}).get(channel, frozenset())
    table = checked_language(language)
    if not required or table is None:
        return []
    folded = " ".join(text.split()).casefold()

    def value(name: str) -> str:
        found = variables.get(name)
        return " ".join(str(found).split()).casefold() if found else ""

    def present(element: Element) -> bool:
        match element:
            case Element.area:
                return bool(value("area")) and value("area") in folded
            case Element.contact:
                return any(v and v in folded for v in (value("utility_phone"), value("utility_url")))
            case Element.what_to_do:
                return _has(folded, WHAT_TO_DO[key][table])
            case Element.resolution:
                etr = value("etr")
                return _has(folded, PHRASES[table][element]) and (not etr or etr in folded)
            case _:
                return _has(folded, PHRASES[table][element])

    return [element for element in Element if element in required and not present(element)]
