"""Notice templates: loaded and compiled once, rendered per (key, channel, language). Pure
apart from reading the files in :func:`load_templates`.

Files: ``<root>/<language>/<key>.<channel>.j2`` (keys: :class:`TemplateKey`, channels:
``sms``, ``voice``, ``push``, ``email``), and ``<root>/<language>/_drill.<channel>.j2``, the
marker put on the first line of every drill notice in that language (so no template can
forget it). Email templates are optional: a key without one (in the default language) is
not sent by email.

Output: each line trimmed, runs of spaces collapsed, at most one blank line in a row, no
blank lines at either end. Push: the first line is the title, the rest the body
(:func:`split_push`). Voice: plain text; the caller escapes it for TwiML. Email: the first
line is ``Subject: <subject>``, then a blank line, then the plain-text body
(:func:`split_email`); a drill email has the marker's first line before its subject and
the marker above its body (the email marker, else the SMS one).

Errors::

    NoticeTemplateError (InvalidInput)   a template is broken: message "<file>:<line>: <reason>"
    └── NoticeTooLarge                   the rendered text exceeds max_chars
    MissingTemplate (NotFound)           neither the language nor the default has the template
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import msgspec
from jinja2 import Template, TemplateSyntaxError

from incident.core.errors import InvalidInput, NotFound
from incident.households import Channel
from incident.notices.context import NoticeContext, TemplateKey, template_variables
from incident.notices.language import match_language
from incident.notices.sandbox import NoticeSandbox, policy_violations

__all__ = [
    "DRILL",
    "MAX_SOURCE_CHARS",
    "CompiledTemplate",
    "MissingTemplate",
    "NoticeCache",
    "NoticeTemplateError",
    "NoticeTemplates",
    "NoticeTooLarge",
    "Rendered",
    "compile_folder",
    "compile_template",
    "load_templates",
    "split_email",
    "split_push",
]

#: The name of the drill marker template in each language folder: ``_drill.<channel>.j2``.
DRILL = "_drill"
#: Longest template source accepted.
MAX_SOURCE_CHARS = 16_384

_NAME = re.compile(r"^(?P<key>_?[a-z][a-z_]*)\.(?P<channel>[a-z]+)\.j2$")
_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n{3,}")


class NoticeTemplateError(InvalidInput):
    """A template cannot be compiled or rendered; ``path`` and ``line`` say where."""

    code = "notice_template_invalid"

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class NoticeTooLarge(NoticeTemplateError):
    code = "notice_too_large"


class MissingTemplate(NotFound):
    code = "notice_template_missing"


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    """One rendered notice. ``fell_back`` is True when the household's language had no such
    template and ``language_used`` is the default language instead."""

    key: str
    channel: Channel
    language_requested: str
    language_used: str
    fell_back: bool
    text: str


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A compiled template and the file it came from."""

    path: str
    template: Template


def _normalise(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def split_push(text: str) -> tuple[str, str]:
    """A rendered push notice as ``(title, body)``: the first line, and the rest."""
    title, _, body = text.partition("\n")
    return title.strip(), body.strip()


#: How an email template's output begins.
SUBJECT = "Subject:"
_EMAIL_SHAPE = (
    "an email template must render 'Subject: <subject>' on its first line, then a blank line, then the body"
)


def split_email(text: str) -> tuple[str, str]:
    """A rendered email notice as ``(subject, body)``; ``ValueError`` when it does not
    have the shape (``Subject: ...``, a blank line, a body)."""
    first, _, rest = text.partition("\n")
    if first[: len(SUBJECT)].lower() != SUBJECT.lower():
        raise ValueError(_EMAIL_SHAPE)
    subject, body = first[len(SUBJECT) :].strip(), rest.strip()
    if not subject or not body or not rest.startswith("\n"):
        raise ValueError(_EMAIL_SHAPE)
    return subject, body


def _template_line(err: BaseException, path: str) -> int | None:
    """The template line of a render error, from the traceback Jinja2 rewrote."""
    line = None
    tb: TracebackType | None = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def compile_template(environment: NoticeSandbox, source: str, path: str) -> Template:
    """Compile one template under the sandbox's policy; NoticeTemplateError with the line."""
    if len(source) > MAX_SOURCE_CHARS:
        raise NoticeTemplateError(path, None, f"template is longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = environment.parse(source, name=path, filename=path)
    except TemplateSyntaxError as err:
        raise NoticeTemplateError(path, err.lineno, f"syntax error: {err.message}") from err
    violations = policy_violations(tree)
    if violations:
        line, reason = violations[0]
        raise NoticeTemplateError(path, line, reason)
    try:
        code = environment.compile(tree, name=path, filename=path)
    except TemplateSyntaxError as err:
        raise NoticeTemplateError(path, err.lineno, f"syntax error: {err.message}") from err
    return environment.template_class.from_code(environment, code, environment.make_globals(None))


class NoticeTemplates:
    """The compiled templates of every language, and how to render them.

    Build it with :func:`load_templates`. ``render`` is pure; for a fan-out, use
    :meth:`cache` and render once per (key, channel, language tag).
    """

    def __init__(
        self,
        environment: NoticeSandbox,
        templates: Mapping[tuple[str, str, str], CompiledTemplate],
        *,
        default_language: str,
    ) -> None:
        self.environment = environment
        self._templates = dict(templates)
        self.languages = frozenset(language for language, _, _ in templates)
        self.default_language = default_language
        self.max_chars = environment.max_chars

    def has(self, language: str, key: str, channel: Channel) -> bool:
        return (language, key, channel) in self._templates

    def paths(self) -> Iterator[tuple[str, str, Channel, str]]:
        """``(language, key, channel, path)`` of every loaded template, drill markers included."""
        for (language, key, channel), compiled in sorted(self._templates.items()):
            yield language, key, Channel(channel), compiled.path

    def resolve(self, key: str, channel: Channel, language: str) -> tuple[str, bool]:
        """The template language for a household's tag, and whether it is a fallback."""
        matched = match_language(language, self.languages)
        if matched is not None and (matched, key, channel) in self._templates:
            return matched, False
        if (self.default_language, key, channel) in self._templates:
            return self.default_language, True
        raise MissingTemplate(
            f"no {key}.{channel} template for {language!r}, nor for the default {self.default_language!r}"
        )

    def render(self, key: str, channel: Channel, language: str, context: NoticeContext) -> Rendered:
        """Render ``key`` on ``channel`` for a household speaking ``language`` (a BCP 47 tag)."""
        used, fell_back = self.resolve(key, channel, language)
        variables = template_variables(context, used)
        compiled = self._templates[used, key, channel]
        text = self._run(compiled, variables)
        if channel is Channel.email:
            try:
                split_email(text)
            except ValueError as err:
                raise NoticeTemplateError(compiled.path, 1, str(err)) from None
        if context.drill:
            marker_channels = (channel, Channel.sms) if channel is Channel.email else (channel,)
            marker = next(
                (
                    found
                    for c in marker_channels
                    for language in (used, self.default_language)
                    if (found := self._templates.get((language, DRILL, c))) is not None
                ),
                None,
            )
            if marker is None:
                raise MissingTemplate(f"no {DRILL}.{channel} drill marker for {used!r} or the default")
            drill = self._run(marker, variables)
            if channel is Channel.email:
                subject, body = split_email(text)
                text = f"{SUBJECT} {drill.partition(chr(10))[0]} {subject}\n\n{drill}\n{body}"
            else:
                text = f"{drill}\n{text}"
            self._check_size(text, compiled.path)
        return Rendered(
            key=key,
            channel=channel,
            language_requested=language,
            language_used=used,
            fell_back=fell_back,
            text=text,
        )

    def _run(self, compiled: CompiledTemplate, variables: dict[str, str | bool | None]) -> str:
        template, limit, size = compiled.template, self.max_chars, 0
        parts: list[str] = []
        try:
            for chunk in template.generate(variables):
                size += len(chunk)
                if size > limit:
                    break
                parts.append(chunk)
        except Exception as err:  # an operator's template may fail in any way; say where
            reason = f"{type(err).__name__}: {err}"
            raise NoticeTemplateError(compiled.path, _template_line(err, compiled.path), reason) from err
        if size > limit:
            raise NoticeTooLarge(compiled.path, None, f"rendered text exceeds {limit} characters")
        text = _normalise("".join(parts))
        self._check_size(text, compiled.path)
        return text

    def _check_size(self, text: str, path: str) -> None:
        size = len(text.encode())
        if size > self.max_chars:
            raise NoticeTooLarge(
                path, None, f"rendered text is {size} bytes, over the limit of {self.max_chars}"
            )

    def cache(self, context: NoticeContext) -> NoticeCache:
        """A memo for one notice: each (key, channel, language tag) is rendered once."""
        return NoticeCache(self, context)


class NoticeCache:
    """Render one notice for many households: the text depends only on the key, channel
    and language tag (templates see no household data), so each is rendered once and
    every later household with the same tag costs one dictionary lookup."""

    def __init__(self, templates: NoticeTemplates, context: NoticeContext) -> None:
        self.templates = templates
        self.context = context
        self._memo: dict[tuple[str, Channel, str], Rendered] = {}

    def render(self, key: str, channel: Channel, language: str) -> Rendered:
        memo_key = (key, channel, language)
        found = self._memo.get(memo_key)
        if found is None:
            found = self._memo[memo_key] = self.templates.render(key, channel, language, self.context)
        return found

    def __len__(self) -> int:
        return len(self._memo)


def compile_folder(
    root: Path, environment: NoticeSandbox
) -> tuple[dict[tuple[str, str, str], CompiledTemplate], list[NoticeTemplateError]]:
    """Compile every ``<root>/<language>/*.j2``: the templates that compile, and an error for
    each that does not (or whose file name is not ``<key>.<channel>.j2`` with a known key and
    channel, so that a typo in a name does not silently leave a template out)."""
    if not root.is_dir():
        return {}, [NoticeTemplateError(str(root), None, "template folder does not exist")]
    compiled: dict[tuple[str, str, str], CompiledTemplate] = {}
    errors: list[NoticeTemplateError] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.j2")):
            match = _NAME.match(path.name)
            if match is None or match["key"] not in _KEYS or match["channel"] not in _CHANNELS:
                reason = "expected <key>.<channel>.j2 with a known template key and sms|voice|push|email"
                errors.append(NoticeTemplateError(str(path), None, reason))
                continue
            try:
                source = path.read_text(encoding="utf-8")
                template = compile_template(environment, source, str(path))
            except UnicodeDecodeError as err:
                errors.append(NoticeTemplateError(str(path), None, f"not UTF-8: {err}"))
            except NoticeTemplateError as err:
                errors.append(err)
            else:
                compiled[folder.name, match["key"], match["channel"]] = CompiledTemplate(str(path), template)
    return compiled, errors


def load_templates(root: Path, *, default_language: str = "en", max_chars: int = 4096) -> NoticeTemplates:
    """Read and compile every template under ``root`` (see :func:`compile_folder`); the first
    broken one raises :class:`NoticeTemplateError` naming its file and line. ``max_chars``
    caps each rendered notice (characters while rendering, UTF-8 bytes of the result)."""
    environment = NoticeSandbox(max_chars=max_chars)
    compiled, errors = compile_folder(root, environment)
    if errors:
        raise errors[0]
    if not any(language == default_language for language, _, _ in compiled):
        raise NoticeTemplateError(
            str(root), None, f"no templates for the default language {default_language!r}"
        )
    return NoticeTemplates(environment, compiled, default_language=default_language)


_KEYS = frozenset(TemplateKey) | {DRILL}
_CHANNELS = frozenset(Channel)
