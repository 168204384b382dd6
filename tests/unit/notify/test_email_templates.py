"""The shipped email templates: every key in every language, as `Subject: ...`, a blank line
and a plain-text body that says who, where, when, what to do, whom to ask, and how to stop
these emails."""

from __future__ import annotations

import itertools

import pytest

from incident.core.domain import Kind, Utility
from incident.households import Channel
from incident.notices.checks import sample_contexts
from incident.notices.context import Advisory, TemplateKey
from incident.notices.templates import DRILL, NoticeTemplates

from .conftest import context

LANGUAGES = ("en", "zh-CN")
CASES = list(itertools.product(LANGUAGES, TemplateKey))
ETR = {"en": "Nov 22, 2:30 PM", "zh-CN": "11月22日 14:30"}
AREA = {"en": "Elm St 1-99", "zh-CN": "榆树街1-99号"}
OPT_OUT = {"en": "To stop receiving them", "zh-CN": "如需退订"}
WITHOUT_ETR = {
    TemplateKey.planned_outage,
    TemplateKey.restored,
    TemplateKey.advisory_lifted,
    TemplateKey.follow_up,
}


def test_every_key_and_the_drill_marker_have_an_email_template_in_each_language(
    bundled: NoticeTemplates,
) -> None:
    missing = [
        (language, key)
        for language, key in itertools.product(LANGUAGES, [*TemplateKey, DRILL])
        if not bundled.has(language, key, Channel.email)
    ]
    assert missing == []


@pytest.mark.parametrize(("language", "key"), CASES)
def test_subject_blank_line_and_a_body_that_says_who_where_when_and_whom_to_ask(
    bundled: NoticeTemplates, language: str, key: TemplateKey
) -> None:
    text = bundled.render(key, Channel.email, language, context(advisory=Advisory.do_not_drink)).text
    subject, blank, *body = text.split("\n")
    assert subject.startswith("Subject: ") and AREA[language] in subject and len(subject) <= 120
    assert blank == "" and body
    text = "\n".join(body)
    assert AREA[language] in text and "Riverside Water" in text and "+86 21 5555 0100" in text
    assert "https://riverside.example/outage" in text
    assert OPT_OUT[language] in body[-1]  # the last line says how to stop these emails
    if key not in WITHOUT_ETR:
        assert ETR[language] in text
    assert "{{" not in text and "{%" not in text and "\n\n\n" not in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_email_wording_follows_the_utility_the_advisory_and_the_cause(
    bundled: NoticeTemplates, language: str
) -> None:
    def email(key: str, **changes: object) -> str:
        return bundled.render(key, Channel.email, language, context(**changes)).text

    gas = email("unplanned_outage", utility=Utility.gas, kind=Kind.unplanned_outage)
    heat = email("unplanned_outage", utility=Utility.heat, kind=Kind.heat_outage)
    assert ("relight" if language == "en" else "重新点火") in gas
    assert ("Keep warm" if language == "en" else "请注意保暖") in heat
    lifted = email("advisory_lifted", advisory=Advisory.do_not_use)
    assert ("do-not-use advisory lifted" if language == "en" else "暂停使用通知已解除") in lifted
    boil = email("boil_water", kind=Kind.contamination)
    assert ("tests found a problem" if language == "en" else "水质检测结果异常") in boil
    drill = email("boil_water", drill=True)
    assert ("Again, this was a drill." if language == "en" else "再次提醒，这是一次演习。") in drill  # noqa: RUF001


def test_emails_fit_the_notice_size_limit_with_every_sample_context(bundled: NoticeTemplates) -> None:
    for language, key, ctx in itertools.product(LANGUAGES, TemplateKey, sample_contexts()):
        text = bundled.render(key, Channel.email, language, ctx).text
        assert len(text.encode()) < 2500, (language, key)  # [notify] max_chars is 4096 by default
