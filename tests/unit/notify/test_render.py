"""Language fallback, the per-notice cache and previews."""

from __future__ import annotations

from pathlib import Path

import pytest

from incident.households import Channel
from incident.notices.preview import preview_notice
from incident.notices.sms import Encoding
from incident.notices.templates import MissingTemplate, NoticeTemplates, load_templates

from .conftest import context


@pytest.mark.parametrize("tag", ["zh-CN", "zh-cn", "zh_CN", "zh"])
def test_chinese_tags_find_the_chinese_templates(bundled: NoticeTemplates, tag: str) -> None:
    rendered = bundled.render("boil_water", Channel.sms, tag, context())
    assert (rendered.language_requested, rendered.language_used, rendered.fell_back) == (tag, "zh-CN", False)
    assert "煮沸" in rendered.text and "11月22日 14:30" in rendered.text


def test_an_unknown_language_falls_back_to_the_default_and_says_so(bundled: NoticeTemplates) -> None:
    rendered = bundled.render("boil_water", Channel.sms, "fr-CA", context())
    assert (rendered.language_used, rendered.fell_back) == ("en", True)
    assert "BOIL WATER" in rendered.text and "Nov 22, 2:30 PM" in rendered.text  # times in the language used
    assert not bundled.render("boil_water", Channel.sms, "en-US", context()).fell_back


def test_a_missing_translation_falls_back_per_template(copy_of_bundled: Path) -> None:
    (copy_of_bundled / "zh-CN" / "boil_water.sms.j2").unlink()
    templates = load_templates(copy_of_bundled)
    sms = templates.render("boil_water", Channel.sms, "zh-CN", context())
    voice = templates.render("boil_water", Channel.voice, "zh-CN", context())
    assert (sms.language_used, sms.fell_back) == ("en", True)
    assert "Elm St 1-99" in sms.text  # the area in the language actually used
    assert (voice.language_used, voice.fell_back) == ("zh-CN", False)


def test_the_default_language_is_configurable(copy_of_bundled: Path) -> None:
    templates = load_templates(copy_of_bundled, default_language="zh-CN")
    rendered = templates.render("gas_leak", Channel.voice, "fr", context())
    assert (rendered.language_used, rendered.fell_back) == ("zh-CN", True)


def test_missing_everywhere_is_a_clear_error(copy_of_bundled: Path) -> None:
    for language in ("en", "zh-CN"):
        (copy_of_bundled / language / "restored.push.j2").unlink()
    templates = load_templates(copy_of_bundled)
    with pytest.raises(
        MissingTemplate, match=r"no restored.push template for 'zh-CN', nor for the default 'en'"
    ):
        templates.render("restored", Channel.push, "zh-CN", context())


def test_the_cache_renders_once_per_language_tag(bundled: NoticeTemplates) -> None:
    ctx = context()
    cache = bundled.cache(ctx)
    tags = ["zh-CN", "en", "zh-CN", "en-US", "zh-CN", "fr", "en"] * 100
    results = [cache.render("main_break", Channel.sms, tag) for tag in tags]
    assert len(cache) == 4
    assert results[0] is results[2]
    for tag, result in zip(tags, results, strict=True):
        assert result == bundled.render("main_break", Channel.sms, tag, ctx)


def test_previews_for_languages_and_channels(bundled: NoticeTemplates) -> None:
    previews = preview_notice(
        bundled, "boil_water", ["zh-CN", "en", "fr"], [Channel.sms, Channel.push, Channel.voice], context()
    )
    assert [(p.language_requested, p.channel) for p in previews] == [
        (language, channel)
        for language in ("zh-CN", "en", "fr")
        for channel in (Channel.sms, Channel.push, Channel.voice)
    ]
    zh_sms, zh_push, zh_voice, en_sms, _, _, fr_sms, _, _ = previews
    assert zh_sms.encoding is Encoding.ucs2 and en_sms.encoding is Encoding.gsm7
    assert zh_sms.segments == -(-(zh_sms.units or 0) // 67) and zh_sms.units == len(zh_sms.text)
    assert zh_push.title == "煮沸饮用通知：榆树街1-99号" and zh_push.body and zh_push.segments is None  # noqa: RUF001
    assert zh_voice.encoding is None and zh_voice.title is None
    assert zh_sms.warnings == () and not zh_sms.fell_back
    assert fr_sms.fell_back and fr_sms.language_used == "en"
    assert fr_sms.warnings == ("no fr template: households get en",)


def test_preview_warns_over_the_segment_limit(bundled: NoticeTemplates) -> None:
    [p] = preview_notice(bundled, "boil_water", ["en"], [Channel.sms], context(), max_segments=1)
    assert p.segments is not None and p.segments > 1
    assert p.warnings == (f"SMS takes {p.segments} parts ({p.units} gsm7 units), over 1",)
