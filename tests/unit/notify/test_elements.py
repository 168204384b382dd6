"""Water-quality notices carry the elements the drinking-water notice rules require, in each
language: a translation that drops a sentence fails the template check, naming the element,
the template and the language."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from incident.core.errors import ConfigError
from incident.households.model import Channel
from incident.notices.checks import Problem, Severity, validate_templates
from incident.notices.context import Advisory, TemplateKey, template_variables
from incident.notices.elements import REQUIRED, Element, missing_elements
from incident.notices.service import load_notice_templates
from incident.notices.templates import load_templates
from incident.settings import NotifySettings

from .conftest import BUNDLED, context

# One sentence of each shipped template, and the element it alone carries.
DROPPED = [
    (
        "zh-CN",
        "boil_water.email.j2",
        "饮用受污染的水可能引起腹泻、腹痛、恶心、头痛等症状。",
        Element.health_effects,
    ),
    ("zh-CN", "do_not_drink.email.j2", "婴幼儿、孕妇、老年人和免疫力低下者风险更高。", Element.at_risk),
    (
        "en",
        "do_not_use.email.j2",
        "Our crews are finding the cause, flushing the pipes and testing the water.",
        Element.actions_taken,
    ),
    (
        "en",
        "boil_water.email.j2",
        "- Bring tap water to a rolling boil for 1 minute, then let it cool before you use it.",
        Element.what_to_do,
    ),
    ("zh-CN", "do_not_use.email.j2", "，{{ area }}的自来水可能受到污染", Element.situation),  # noqa: RUF001
    (
        "zh-CN",
        "boil_water.voice.j2",
        "饮用受污染的水可能引起腹泻、腹痛、恶心和头痛。",
        Element.health_effects,
    ),
    (
        "en",
        "do_not_drink.voice.j2",
        "Drinking it may cause nausea, vomiting, diarrhea or other health effects.",
        Element.health_effects,
    ),
    ("zh-CN", "do_not_use.voice.j2", "婴幼儿、孕妇、老年人和免疫力低下者尤其需要注意。", Element.at_risk),
    ("en", "do_not_drink.voice.j2", " This advisory takes effect immediately.", Element.occurred),
    ("zh-CN", "do_not_drink.voice.j2", "抢修人员正在排查原因、冲洗管网并检测水质。", Element.actions_taken),
    ("zh-CN", "boil_water.sms.j2", "详询 {{ utility_phone }} 或 {{ utility_url }}", Element.contact),
]


def drop(root: Path, language: str, name: str, sentence: str) -> Path:
    path = root / language / name
    source = path.read_text(encoding="utf-8")
    assert source.count(sentence) == 1, f"{sentence!r} is not once in {path}"
    path.write_text(source.replace(sentence, ""), encoding="utf-8")
    return path


def errors(root: Path) -> list[Problem]:
    return [p for p in validate_templates(root) if p.severity is Severity.error]


@pytest.mark.parametrize(("language", "name", "sentence", "element"), DROPPED)
def test_a_dropped_sentence_fails_the_check_naming_element_template_and_language(
    copy_of_bundled: Path, language: str, name: str, sentence: str, element: Element
) -> None:
    path = drop(copy_of_bundled, language, name, sentence)
    [problem] = errors(copy_of_bundled)
    assert problem.path == str(path)
    assert f"required element {element}" in problem.message
    assert f"in {language}" in problem.message
    assert name.removesuffix(".j2") in problem.message


def test_an_etr_that_is_not_said_fails_even_with_the_wording_kept(copy_of_bundled: Path) -> None:
    drop(copy_of_bundled, "en", "do_not_use.voice.j2", " around {{ etr }}")
    [problem] = errors(copy_of_bundled)
    assert "required element resolution" in problem.message


def test_a_branch_without_the_element_fails_though_another_branch_has_it(copy_of_bundled: Path) -> None:
    # Said only when the ETR is known: the sample contexts without one catch it.
    drop(copy_of_bundled, "zh-CN", "boil_water.voice.j2", "{% else %}解除时间确定后，我们将另行通知。")  # noqa: RUF001
    [problem] = errors(copy_of_bundled)
    assert "required element resolution" in problem.message and "in zh-CN" in problem.message


def test_a_comment_in_place_of_the_sentence_does_not_count(copy_of_bundled: Path) -> None:
    path = copy_of_bundled / "zh-CN" / "boil_water.voice.j2"
    sentence = "饮用受污染的水可能引起腹泻、腹痛、恶心和头痛。"
    path.write_text(
        path.read_text(encoding="utf-8").replace(sentence, "{# health_effects: 腹泻 #}"), encoding="utf-8"
    )
    assert [p.message for p in errors(copy_of_bundled)] == [
        "boil_water.voice in zh-CN lacks the required element health_effects (the potential health "
        "effects) of a drinking-water notice"
    ]


def test_a_language_without_phrases_is_reported_once_as_unchecked(copy_of_bundled: Path) -> None:
    shutil.copytree(copy_of_bundled / "en", copy_of_bundled / "es")
    found = validate_templates(copy_of_bundled)
    assert [(p.severity, p.path) for p in found] == [(Severity.warning, str(copy_of_bundled / "es"))]
    assert "cannot be checked in es" in found[0].message and "boil_water" in found[0].message


def test_a_regional_tag_uses_its_language_phrases(copy_of_bundled: Path) -> None:
    shutil.copytree(copy_of_bundled / "en", copy_of_bundled / "en-GB")
    drop(
        copy_of_bundled,
        "en-GB",
        "boil_water.voice.j2",
        "They can cause diarrhea, cramps, nausea and headaches. ",
    )
    [problem] = errors(copy_of_bundled)
    assert "health_effects" in problem.message and "in en-GB" in problem.message


def test_short_channels_need_what_to_do_where_and_whom_to_ask() -> None:
    assert REQUIRED[TemplateKey.boil_water]["sms"] == {Element.what_to_do, Element.area, Element.contact}
    assert REQUIRED[TemplateKey.do_not_use]["voice"] == set(Element)
    assert TemplateKey.main_break not in REQUIRED


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_recogniser_on_rendered_text(language: str) -> None:
    templates = load_templates(BUNDLED)
    ctx = context(advisory=Advisory.boil_water)
    variables = template_variables(ctx, language)
    text = templates.render("boil_water", "sms", language, ctx).text  # type: ignore[arg-type]
    assert missing_elements("boil_water", "sms", language, text, variables) == []
    without_area = text.replace(str(variables["area"]), "")
    assert missing_elements("boil_water", "sms", language, without_area, variables) == [Element.area]
    # the long channel's rule on the short text: everything but the three
    long = missing_elements("boil_water", "voice", language, text, variables)
    assert Element.health_effects in long and Element.contact not in long
    assert missing_elements("main_break", "voice", language, "", variables) == []


def test_a_missing_element_fails_the_check_but_not_the_start(copy_of_bundled: Path) -> None:
    drop(copy_of_bundled, *DROPPED[0][:3])
    assert [p.element for p in errors(copy_of_bundled)] == [True]
    # The service still starts: a utility's own copies must not keep it from notifying anyone.
    templates = load_notice_templates(NotifySettings(templates=str(copy_of_bundled)))
    assert templates.has("zh-CN", "boil_water", Channel.email)
    # A template that does not compile still stops the start.
    (copy_of_bundled / "en" / "restored.sms.j2").write_text("{% if %}", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"restored\.sms"):
        load_notice_templates(NotifySettings(templates=str(copy_of_bundled)))
