"""Previews of a notice for the dispatcher: text, SMS encoding and parts, warnings. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from incident.deliveries.records import Preview
from incident.households import Channel
from incident.notices.context import NoticeContext
from incident.notices.sms import sms_info
from incident.notices.templates import NoticeTemplates, Rendered, split_email, split_push

__all__ = ["EMAIL_SUBJECT_CHARS", "PUSH_TITLE_CHARS", "Preview", "preview", "preview_notice"]

#: Longer push titles are cut short on many lock screens.
PUSH_TITLE_CHARS = 65
#: Longer subjects are cut short in most mail lists (and on phones well before).
EMAIL_SUBJECT_CHARS = 78


def preview(rendered: Rendered, *, max_segments: int = 3) -> Preview:
    """The preview of one rendered notice; warns over ``max_segments`` SMS parts."""
    warnings: list[str] = []
    if rendered.fell_back:
        warnings.append(f"no {rendered.language_requested} template: households get {rendered.language_used}")
    info = sms_info(rendered.text) if rendered.channel is Channel.sms else None
    title: str | None = None
    body: str | None = None
    if rendered.channel is Channel.push:
        title, body = split_push(rendered.text)
    elif rendered.channel is Channel.email:
        title, body = split_email(rendered.text)  # the subject; rendering checked the shape
        if len(title) > EMAIL_SUBJECT_CHARS:
            warnings.append(
                f"email subject has {len(title)} characters; mail lists may cut it at {EMAIL_SUBJECT_CHARS}"
            )
    if info is not None and info.segments > max_segments:
        warnings.append(
            f"SMS takes {info.segments} parts ({info.units} {info.encoding} units), over {max_segments}"
        )
    if title is not None and len(title) > PUSH_TITLE_CHARS:
        warnings.append(
            f"push title has {len(title)} characters; lock screens may cut it at {PUSH_TITLE_CHARS}"
        )
    return Preview(
        key=rendered.key,
        channel=rendered.channel,
        language_requested=rendered.language_requested,
        language_used=rendered.language_used,
        fell_back=rendered.fell_back,
        text=rendered.text,
        characters=len(rendered.text),
        encoding=None if info is None else info.encoding,
        units=None if info is None else info.units,
        segments=None if info is None else info.segments,
        title=title,
        body=body,
        warnings=tuple(warnings),
    )


def preview_notice(
    templates: NoticeTemplates,
    key: str,
    languages: Iterable[str],
    channels: Iterable[Channel],
    context: NoticeContext,
    *,
    max_segments: int = 3,
) -> list[Preview]:
    """Previews of ``key`` for each language tag and channel, languages outermost."""
    channels = list(channels)
    return [
        preview(templates.render(key, channel, language, context), max_segments=max_segments)
        for language in languages
        for channel in channels
    ]
