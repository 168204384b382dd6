"""Email notices: 'Subject: ...', a blank line, the body; drills marked in both; previews
show subject and body; a template without a subject line is refused saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from incident.households import Channel
from incident.notices.checks import validate_templates
from incident.notices.preview import preview_notice
from incident.notices.templates import NoticeTemplateError, NoticeTemplates, load_templates, split_email

from .conftest import context


@pytest.mark.parametrize(
    ("language", "subject", "in_body"),
    [
        ("en", "Riverside Water: water main break in Elm St 1-99", "Estimated restoration: Nov 22, 2:30 PM."),
        ("zh-CN", "【Riverside Water】榆树街1-99号供水管道爆管", "预计恢复时间：11月22日 14:30。"),  # noqa: RUF001
    ],
)
def test_an_email_renders_as_subject_and_body(
    bundled: NoticeTemplates, language: str, subject: str, in_body: str
) -> None:
    rendered = bundled.render("main_break", Channel.email, language, context())
    assert rendered.language_used == language
    got_subject, body = split_email(rendered.text)
    assert got_subject == subject
    assert in_body in body and "https://riverside.example/outage" in body
    assert not body.startswith("Subject")


def test_a_drill_email_says_so_in_its_subject_and_first_line(bundled: NoticeTemplates) -> None:
    for language, marker in (("en", "DRILL - this is an exercise."), ("zh-CN", "【演习】")):
        text = bundled.render("main_break", Channel.email, language, context(drill=True)).text
        subject, body = split_email(text)
        assert subject.startswith(marker) and body.startswith(marker)


def test_the_sms_marker_stands_in_for_a_missing_email_marker(copy_of_bundled: Path) -> None:
    for language in ("en", "zh-CN"):
        (copy_of_bundled / language / "_drill.email.j2").unlink()
    templates = load_templates(copy_of_bundled)
    subject, _ = split_email(templates.render("main_break", Channel.email, "en", context(drill=True)).text)
    assert subject.startswith("DRILL")


@pytest.mark.parametrize(
    "source",
    [
        "Water main break in {{ area }}\n\nKeep away from the site.",  # no subject line
        "Subject: {{ area }}\nKeep away from the site.",  # no blank line
        "Subject:\n\nKeep away from the site.",  # an empty subject
        "Subject: Main break\n\n",  # no body
    ],
)
def test_an_email_template_without_the_subject_shape_is_refused(copy_of_bundled: Path, source: str) -> None:
    path = copy_of_bundled / "en" / "main_break.email.j2"
    path.write_text(source, encoding="utf-8")
    templates = load_templates(copy_of_bundled)
    with pytest.raises(
        NoticeTemplateError, match="must render 'Subject: <subject>' on its first line"
    ) as err:
        templates.render("main_break", Channel.email, "en", context())
    assert err.value.path == str(path) and err.value.line == 1
    problems = validate_templates(copy_of_bundled)
    assert any(p.path == str(path) and "Subject" in p.message for p in problems)


def test_the_preview_shows_subject_and_body(bundled: NoticeTemplates) -> None:
    [en, zh] = preview_notice(bundled, "main_break", ["en", "zh-CN"], [Channel.email], context())
    assert en.title == "Riverside Water: water main break in Elm St 1-99"
    assert en.body is not None and en.body.startswith("A water main break is affecting Elm St 1-99.")
    assert en.text.startswith("Subject: ") and en.segments is None and en.warnings == ()
    assert zh.title is not None and "榆树街1-99号" in zh.title


def test_a_long_subject_is_warned_about(copy_of_bundled: Path) -> None:
    (copy_of_bundled / "en" / "main_break.email.j2").write_text(
        "Subject: " + "Water main break " * 6 + "\n\nBody.", encoding="utf-8"
    )
    [p] = preview_notice(load_templates(copy_of_bundled), "main_break", ["en"], [Channel.email], context())
    assert any("email subject has" in w for w in p.warnings)


def test_a_key_without_email_templates_is_no_problem_but_a_missing_translation_is(
    copy_of_bundled: Path,
) -> None:
    assert validate_templates(copy_of_bundled) == []
    (copy_of_bundled / "zh-CN" / "main_break.email.j2").unlink()
    [problem] = validate_templates(copy_of_bundled)
    assert problem.severity.value == "warning" and "main_break on email in zh-CN" in problem.message
