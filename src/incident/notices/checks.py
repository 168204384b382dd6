"""Check a folder of notice templates before it is used (at start-up, after an edit).

:func:`validate_templates` compiles every file on its own, looks for variables a template
uses but the context does not give (in every branch, with the line), and test-renders each
template with sample contexts for every utility, with and without the optional facts and
as a drill. It returns every problem instead of stopping at the first.

    error     the template cannot be used: bad name, syntax, unknown variable, render
              failure, a key or channel missing in the default language, a water-quality
              notice without an element the drinking-water notice rules require
              (:mod:`.elements`: e.g. the health effects dropped from a translation)
    warning   it works but should be looked at: a translation missing (households get the
              default language), a voice notice that does not ask to press 1, an SMS over
              ``max_segments`` parts, a language whose required elements cannot be
              checked (no phrases for it in :mod:`.elements`)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import msgspec
from jinja2 import meta, nodes

from incident.core.domain import Kind, Utility
from incident.households import Channel
from incident.notices.context import VARIABLES, Advisory, NoticeContext, TemplateKey, template_variables
from incident.notices.elements import DESCRIPTIONS, REQUIRED, checked_language, missing_elements
from incident.notices.sandbox import NoticeSandbox
from incident.notices.sms import sms_info
from incident.notices.templates import (
    DRILL,
    CompiledTemplate,
    NoticeTemplateError,
    NoticeTemplates,
    compile_folder,
)

__all__ = ["Problem", "Severity", "sample_contexts", "validate_templates"]


class Severity(StrEnum):
    error = "error"
    warning = "warning"


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    severity: Severity
    path: str
    line: int | None
    message: str
    #: A required element of a drinking-water notice is missing: the check fails, but a
    #: running service starts anyway (an incomplete notice the dispatcher reads beats none).
    element: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.severity}: {where}: {self.message}"


def sample_contexts() -> list[NoticeContext]:
    """Contexts that exercise every branch of the bundled templates: each utility, with all
    optional facts (as a drill) and with none."""
    at = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)
    contexts = []
    for utility, kind in (
        (Utility.water, Kind.main_break),
        (Utility.gas, Kind.gas_leak),
        (Utility.heat, Kind.heat_outage),
    ):
        bare = NoticeContext(
            utility_name="Riverside Utilities",
            utility_phone="+1 502 555 0100",
            utility_url="https://riverside.example/outages",
            incident_id="INC-2026-000001",
            kind=kind,
            utility=utility,
            area="Elm St between 3rd and 5th Ave",
            area_i18n={"zh-CN": "榆树街3至5号大道段"},
            timezone="America/Kentucky/Louisville",
        )
        full = msgspec.structs.replace(
            bare,
            note="Bottled water at Elm Park until 8 PM.",
            note_i18n={"zh-CN": "榆树公园晚8点前提供瓶装水。"},
            advisory=Advisory.do_not_drink,
            etr=at,
            start=at - timedelta(hours=6),
            end=at + timedelta(hours=2),
            drill=True,
        )
        contexts += [bare, full]
    return contexts


def _unknown_variables(environment: NoticeSandbox, compiled: CompiledTemplate) -> list[Problem]:
    source = Path(compiled.path).read_text(encoding="utf-8")
    tree = environment.parse(source)
    problems = []
    for name in sorted(meta.find_undeclared_variables(tree) - VARIABLES):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        allowed = ", ".join(sorted(VARIABLES))
        message = f"unknown variable {name!r} (templates may use: {allowed})"
        problems.append(Problem(severity=Severity.error, path=compiled.path, line=line, message=message))
    return problems


def _consequence(severity: Severity, channel: Channel) -> tuple[Severity, str]:
    if severity is not Severity.error:
        return severity, "falls back to the default"
    if channel is Channel.email:
        return Severity.warning, "is not sent by email"
    return severity, "cannot be sent"


def _coverage(templates: NoticeTemplates, root: Path, broken: set[str]) -> list[Problem]:
    problems = []
    # Email is optional per key: a key without any email template is simply not sent by
    # email (plans say so); one with some is checked in every language like the others.
    by_email = {key for _, key, channel, _ in templates.paths() if channel is Channel.email}
    for language in sorted(templates.languages):
        severity = Severity.error if language == templates.default_language else Severity.warning
        for key in [*TemplateKey, DRILL]:
            for channel in Channel:
                if channel is Channel.email and key not in by_email and (key != DRILL or not by_email):
                    continue
                path = str(root / language / f"{key}.{channel}.j2")
                if not templates.has(language, key, channel) and path not in broken:
                    level, consequence = _consequence(severity, channel)
                    message = f"missing: {key} on {channel} in {language} {consequence}"
                    problems.append(Problem(severity=level, path=path, line=None, message=message))
    return problems


def _render_all(
    templates: NoticeTemplates, contexts: list[NoticeContext], max_segments: int, skip: set[str]
) -> list[Problem]:
    problems: dict[tuple[str, int | None, str], Problem] = {}

    def add(severity: Severity, path: str, line: int | None, message: str, element: bool = False) -> None:
        problems.setdefault(
            (path, line, message),
            Problem(severity=severity, path=path, line=line, message=message, element=element),
        )

    for language, key, channel, path in templates.paths():
        if key == DRILL or path in skip:
            continue
        for context in contexts:
            try:
                text = templates.render(key, channel, language, context).text
            except NoticeTemplateError as err:
                add(Severity.error, err.path, err.line, err.reason)
                continue
            if channel is Channel.voice and "1" not in text.rsplit("\n", 1)[-1]:
                add(
                    Severity.warning,
                    path,
                    None,
                    "the voice notice should end by asking to press 1 to confirm",
                )
            for element in missing_elements(
                key, channel, language, text, template_variables(context, language)
            ):
                add(
                    Severity.error,
                    path,
                    None,
                    f"{key}.{channel} in {language} lacks the required element {element} "
                    f"({DESCRIPTIONS[element]}) of a drinking-water notice",
                    element=True,
                )
            segments = sms_info(text).segments
            if channel is Channel.sms and segments > max_segments:
                add(
                    Severity.warning,
                    path,
                    None,
                    f"SMS takes {segments} parts with a sample context (over {max_segments})",
                )
    return list(problems.values())


def _unchecked_languages(templates: NoticeTemplates, root: Path) -> list[Problem]:
    problems = []
    for language in sorted(templates.languages):
        keys = sorted({key for lang, key, _, _ in templates.paths() if lang == language and key in REQUIRED})
        if keys and checked_language(language) is None:
            message = (
                f"the required elements of {', '.join(keys)} cannot be checked in {language}: "
                "no phrases for that language (incident.notices.elements)"
            )
            path = str(root / language)
            problems.append(Problem(severity=Severity.warning, path=path, line=None, message=message))
    return problems


def validate_templates(
    root: Path,
    *,
    default_language: str = "en",
    max_chars: int = 4096,
    max_segments: int = 3,
    contexts: list[NoticeContext] | None = None,
) -> list[Problem]:
    """Every problem of the templates under ``root``, errors first; empty when all is well."""
    environment = NoticeSandbox(max_chars=max_chars)
    compiled, errors = compile_folder(root, environment)
    problems = [Problem(severity=Severity.error, path=e.path, line=e.line, message=e.reason) for e in errors]
    if compiled and not any(language == default_language for language, _, _ in compiled):
        message = f"no templates for the default language {default_language!r}"
        problems.append(Problem(severity=Severity.error, path=str(root), line=None, message=message))
    unknown = [
        problem for template in compiled.values() for problem in _unknown_variables(environment, template)
    ]
    problems += unknown
    if compiled:
        templates = NoticeTemplates(environment, compiled, default_language=default_language)
        problems += _coverage(templates, root, {error.path for error in errors})
        # an unknown variable fails every render of its template: said once above
        skip = {problem.path for problem in unknown}
        problems += _render_all(templates, contexts or sample_contexts(), max_segments, skip)
        problems += _unchecked_languages(templates, root)
    return sorted(problems, key=lambda p: (p.severity is not Severity.error, p.path, p.line or 0))
