"""Operator-edited templates: bombs are stopped, output is capped, a broken template is
reported with its file and line, at load time when it can be."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from incident.households import Channel
from incident.notices.checks import Severity, validate_templates
from incident.notices.templates import NoticeTemplateError, NoticeTooLarge, load_templates

from .conftest import context


def folder(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "notices"
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


def render_one(tmp_path: Path, source: str, *, max_chars: int = 4096) -> str:
    root = folder(tmp_path, {"en/main_break.sms.j2": source})
    return load_templates(root, max_chars=max_chars).render("main_break", Channel.sms, "en", context()).text


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("ok\n\n{{ 'a' * 10**8 }}", "'*' would repeat to 100000000 characters"),
        ("ok\n\n{{ 10**8 * 'a' }}", "'*' would repeat to 100000000 characters"),
        ("ok\n\n{{ [area] * 10**8 }}", "'*' would repeat to 100000000"),
        ("ok\n\n{{ 9 ** 999999 }}", "'**' would build a number over 4096 bits"),
        ("ok\n\n{{ '%099999999d' % 1 }}", "'%' string formatting is not allowed"),
    ],
)
def test_bombs_are_stopped_at_render_with_file_and_line(tmp_path: Path, source: str, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(NoticeTemplateError, match=re.escape(reason)) as caught:
        render_one(tmp_path, source)
    assert time.perf_counter() - started < 1.0
    assert caught.value.path.endswith("en/main_break.sms.j2")
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{caught.value.path}:3: ")


def test_small_repetition_and_arithmetic_still_work(tmp_path: Path) -> None:
    assert render_one(tmp_path, "{{ '=' * 5 }} {{ 2 ** 10 }} {{ 7 % 3 }}") == "===== 1024 1"


@pytest.mark.parametrize(
    ("source", "line", "reason"),
    [
        ("a\n{% for c in area %}{{ c }}{% endfor %}", 2, r"loops \(\{% for %\}\) not allowed"),
        ("a\nb\n{% set x = area ~ area %}{{ x }}", 3, "variables"),
        ("{% macro m(x) %}{{ m(x ~ x) }}{% endmacro %}{{ m(area) }}", 1, "macros"),
        ("a\n{{ area.upper() }}", 2, "calls not allowed"),
        ("a\n{{ lipsum(10000) }}", 2, "calls not allowed"),
        ("{% include 'other.j2' %}", 1, "include"),
        ("a\n{{ area | center(100000000) }}", 2, "filter 'center' not allowed"),
        ("a\n{% if drill %}\nno end", 3, "syntax error"),
        ("a\n{{ area | nosuchfilter }}", 2, "filter 'nosuchfilter' not allowed"),
    ],
)
def test_forbidden_or_broken_templates_fail_at_load(
    tmp_path: Path, source: str, line: int, reason: str
) -> None:
    root = folder(tmp_path, {"en/main_break.sms.j2": source})
    with pytest.raises(NoticeTemplateError, match=reason) as caught:
        load_templates(root)
    assert (Path(caught.value.path).name, caught.value.line) == ("main_break.sms.j2", line)


def test_unsafe_attributes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NoticeTemplateError, match="unsafe") as caught:
        render_one(tmp_path, "x\n{{ area.__class__ }}")
    assert caught.value.line == 2


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(NoticeTemplateError, match="'utilty_name' is undefined") as caught:
        render_one(tmp_path, "Hello\nfrom\n{{ utilty_name }}")
    assert caught.value.line == 3


def test_rendered_size_is_capped(tmp_path: Path) -> None:
    assert len(render_one(tmp_path, "x" * 100, max_chars=100)) == 100
    with pytest.raises(NoticeTooLarge, match="exceeds 100 characters"):
        render_one(tmp_path, "x" * 101, max_chars=100)
    # the cap is on UTF-8 bytes: 2,000 Chinese characters are 6,000 bytes
    with pytest.raises(NoticeTooLarge, match="6000 bytes, over the limit of 4096"):
        render_one(tmp_path, "中" * 2000)
    # replace cannot grow a value past the cap either
    with pytest.raises(NoticeTemplateError, match="replace would build more than 4096"):
        render_one(
            tmp_path,
            "{{ area | replace('', '0123456789') | replace('', '0123456789') | replace('', '0123456789') }}",
        )


def test_loading_refuses_a_misnamed_file(tmp_path: Path) -> None:
    root = folder(tmp_path, {"en/main_brake.sms.j2": "x", "en/main_break.sms.j2": "x"})
    with pytest.raises(NoticeTemplateError, match=r"expected <key>\.<channel>\.j2") as caught:
        load_templates(root)
    assert caught.value.path.endswith("main_brake.sms.j2")


def test_validation_reports_every_problem_at_once(tmp_path: Path, copy_of_bundled: Path) -> None:
    en = copy_of_bundled / "en"
    (en / "boil_water.sms.j2").write_text("Boil\n{% if etr %}\n", encoding="utf-8")
    (en / "restored.voice.j2").write_text(
        "Restored.\n{% if drill %}{{ utility_nme }}{% endif %} press 1", encoding="utf-8"
    )
    (en / "gas_leak.push.j2").unlink()
    (copy_of_bundled / "zh-CN" / "follow_up.voice.j2").write_text(
        "{{ area }}\n{{ '*' * 10**6 }}", encoding="utf-8"
    )
    (copy_of_bundled / "zh-CN" / "heat_outage.sms.j2").unlink()
    (copy_of_bundled / "zh-CN" / "restored.voice.j2").write_text(
        "{{ utility_name }}已恢复。", encoding="utf-8"
    )

    found = {(Path(p.path).name, p.line, p.severity) for p in validate_templates(copy_of_bundled)}

    assert found == {
        ("boil_water.sms.j2", 2, Severity.error),  # syntax
        ("restored.voice.j2", 2, Severity.error),  # unknown variable, in a branch not always taken
        ("gas_leak.push.j2", None, Severity.error),  # the default language must have every template
        ("follow_up.voice.j2", 2, Severity.error),  # the bomb
        ("heat_outage.sms.j2", None, Severity.warning),  # households fall back to en
        ("restored.voice.j2", None, Severity.warning),  # no "press 1"
    }


def test_validation_of_a_missing_folder(tmp_path: Path) -> None:
    [problem] = validate_templates(tmp_path / "nowhere")
    assert problem.severity is Severity.error and "does not exist" in problem.message
