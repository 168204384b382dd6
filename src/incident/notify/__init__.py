"""Notifying households: notice templates and rendering (this part), planning, channels,
delivery tracking (built on top).

Rendering is pure: data in, data out; only :func:`load_templates` and
:func:`validate_templates` read files.

    sms        GSM-7 / UCS-2 encoding and segment counts              (leaf)
    language   household language tags → template language; times     (leaf)
    context    NoticeContext, TemplateKey, the variables templates see
    sandbox    the Jinja2 sandbox and the syntax policy for operator templates
    templates  load, compile once, render with language fallback, NoticeCache
    checks     validate a template folder: every problem, with file and line
    preview    what the dispatcher sees before approving a notice
"""

from incident.notify.checks import Problem, Severity, sample_contexts, validate_templates
from incident.notify.context import VARIABLES, Advisory, NoticeContext, TemplateKey, template_variables
from incident.notify.language import format_time, match_language
from incident.notify.preview import Preview, preview, preview_notice
from incident.notify.sms import Encoding, SmsInfo, sms_info
from incident.notify.templates import (
    MissingTemplate,
    NoticeCache,
    NoticeTemplateError,
    NoticeTemplates,
    NoticeTooLarge,
    Rendered,
    load_templates,
    split_push,
)

__all__ = [
    "VARIABLES",
    "Advisory",
    "Encoding",
    "MissingTemplate",
    "NoticeCache",
    "NoticeContext",
    "NoticeTemplateError",
    "NoticeTemplates",
    "NoticeTooLarge",
    "Preview",
    "Problem",
    "Rendered",
    "Severity",
    "SmsInfo",
    "TemplateKey",
    "format_time",
    "load_templates",
    "match_language",
    "preview",
    "preview_notice",
    "sample_contexts",
    "sms_info",
    "split_push",
    "template_variables",
    "validate_templates",
]
