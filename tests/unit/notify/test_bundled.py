"""Every bundled template: renders in every language and channel, says who, where, when,
what to do, and where to learn more; drills are marked; voice asks to press 1."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from incident.core.domain import Kind, Utility
from incident.households import Channel
from incident.notices.checks import sample_contexts, validate_templates
from incident.notices.context import Advisory, TemplateKey
from incident.notices.sms import Encoding, sms_info
from incident.notices.templates import NoticeTemplates, split_push

from .conftest import BUNDLED, context

LANGUAGES = ("en", "zh-CN")
# Email templates are optional per key (without one, email is not a channel of the notice).
CASES = list(itertools.product(LANGUAGES, TemplateKey, [c for c in Channel if c is not Channel.email]))
# Worked out by hand for Asia/Shanghai (UTC+8): see conftest.context.
ETR = {"en": "Nov 22, 2:30 PM", "zh-CN": "11月22日 14:30"}
START = {"en": "Nov 22, 9:00 AM", "zh-CN": "11月22日 09:00"}
END = {"en": "Nov 22, 5:00 PM", "zh-CN": "11月22日 17:00"}
AREA = {"en": "Elm St 1-99", "zh-CN": "榆树街1-99号"}
DRILL = {"en": "DRILL", "zh-CN": "演习"}
WITH_ETR = {
    TemplateKey.main_break, TemplateKey.unplanned_outage, TemplateKey.low_pressure, TemplateKey.boil_water,
    TemplateKey.do_not_drink, TemplateKey.do_not_use, TemplateKey.gas_leak, TemplateKey.heat_outage,
    TemplateKey.etr_update,
}  # fmt: skip


def test_the_bundled_folder_validates_without_any_problem() -> None:
    assert validate_templates(BUNDLED) == []


def test_every_language_has_every_key_and_channel(bundled: NoticeTemplates) -> None:
    assert bundled.languages == set(LANGUAGES)
    missing = [case for case in CASES if not bundled.has(*case)]
    assert missing == []


@pytest.mark.parametrize(("language", "key", "channel"), CASES)
def test_renders_who_where_and_when(
    bundled: NoticeTemplates, language: str, key: TemplateKey, channel: Channel
) -> None:
    rendered = bundled.render(key, channel, language, context(advisory=Advisory.boil_water))
    text = rendered.text
    assert (rendered.language_used, rendered.fell_back) == (language, False)
    assert "Riverside Water" in text
    assert AREA[language] in text
    assert DRILL[language] not in text
    assert "{{" not in text and "{%" not in text
    if key in WITH_ETR:
        assert ETR[language] in text
    if key is TemplateKey.planned_outage:
        assert START[language] in text and END[language] in text
    if channel is Channel.sms:
        assert "+86 21 5555 0100" in text  # where to learn more, or whom to call
    if channel is Channel.push:
        title, body = split_push(text)
        assert title and body and len(title) <= 65


@pytest.mark.parametrize(("language", "key", "channel"), CASES)
def test_drills_are_marked_on_the_first_line(
    bundled: NoticeTemplates, language: str, key: TemplateKey, channel: Channel
) -> None:
    text = bundled.render(key, channel, language, context(drill=True)).text
    first = text.split("\n", 1)[0].lower()
    assert DRILL[language].lower() in first
    assert "exercise" in first if language == "en" else "演习" in first
    assert "Riverside Water" in text


@pytest.mark.parametrize(("language", "key"), list(itertools.product(LANGUAGES, TemplateKey)))
@pytest.mark.parametrize("drill", [False, True])
def test_voice_ends_by_asking_to_press_1(
    bundled: NoticeTemplates, language: str, key: TemplateKey, drill: bool
) -> None:
    last = bundled.render(key, Channel.voice, language, context(drill=drill)).text.rsplit("\n", 1)[-1]
    assert ("press 1" if language == "en" else "按1") in last


def test_english_sms_stays_gsm7_and_no_sms_passes_three_parts(bundled: NoticeTemplates) -> None:
    for language, key, ctx in itertools.product(LANGUAGES, TemplateKey, sample_contexts()):
        info = sms_info(bundled.render(key, Channel.sms, language, ctx).text)
        assert info.segments <= 3, (language, key)
        assert info.encoding is (Encoding.gsm7 if language == "en" else Encoding.ucs2), (language, key)


@pytest.mark.parametrize(
    ("key", "en", "zh"),
    [
        (TemplateKey.boil_water, "boil for 1 minute", "沸腾1分钟"),
        (TemplateKey.do_not_drink, "Boiling will NOT make it safe", "煮沸也不安全"),
        (
            TemplateKey.do_not_use,
            "not for drinking, cooking, bathing or washing",
            "请勿饮用、做饭、洗浴或洗涤",
        ),
        (TemplateKey.gas_leak, "Leave the building now", "请立即撤离到室外"),
        (TemplateKey.gas_leak, "No flames", "严禁明火"),
        (TemplateKey.gas_leak, "Do not use light switches", "勿开关电灯电器"),
        (
            TemplateKey.gas_leak,
            "Once safely outside, call +86 21 5555 0100",
            "到达安全处后请拨打+86 21 5555 0100",
        ),
        (TemplateKey.heat_outage, "Keep warm", "请注意保暖"),
        (TemplateKey.follow_up, "Reply YES if it is, or NO if it is not", "已恢复请回复YES，未恢复请回复NO"),  # noqa: RUF001
    ],
)
def test_sms_says_what_to_do(bundled: NoticeTemplates, key: TemplateKey, en: str, zh: str) -> None:
    ctx = context(utility=Utility.gas if key is TemplateKey.gas_leak else Utility.water)
    assert en in bundled.render(key, Channel.sms, "en", ctx).text.replace("rolling boil", "boil")
    assert zh in bundled.render(key, Channel.sms, "zh-CN", ctx).text


def test_wording_follows_the_utility_and_the_advisory(bundled: NoticeTemplates) -> None:
    heat = context(utility=Utility.heat, kind=Kind.heat_outage)
    assert "heating outage" in bundled.render("unplanned_outage", Channel.sms, "en", heat).text
    assert "停暖" in bundled.render("unplanned_outage", Channel.sms, "zh-CN", heat).text
    lifted = context(advisory=Advisory.do_not_drink)
    assert "do-not-drink advisory" in bundled.render("advisory_lifted", Channel.sms, "en", lifted).text
    assert "暂停饮用通知已解除" in bundled.render("advisory_lifted", Channel.sms, "zh-CN", lifted).text


def test_without_etr_the_notice_says_it_will_follow(bundled: NoticeTemplates) -> None:
    bare = context(etr=None, note="Tanker at Elm Park.", note_i18n={"zh-CN": "榆树公园有送水车。"})
    en = bundled.render("main_break", Channel.sms, "en", bare).text
    zh = bundled.render("main_break", Channel.sms, "zh-CN", bare).text
    assert "estimated restoration time as soon as we know" in en and "Tanker at Elm Park." in en
    assert "预计恢复时间确定后将另行通知" in zh and "榆树公园有送水车。" in zh


def test_text_does_not_depend_on_anything_but_the_context(bundled: NoticeTemplates) -> None:
    ctx = context()
    first = bundled.render("boil_water", Channel.sms, "zh-CN", ctx)
    assert bundled.render("boil_water", Channel.sms, "zh-CN", msgspec.structs.replace(ctx)) == first
