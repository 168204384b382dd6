"""Notifying households: the notice flow (:mod:`.service`), rendering, planning and the fan-out.

Rendering is pure: data in, data out; only :func:`.templates.load_templates` and
:func:`.checks.validate_templates` read files.

    sms        GSM-7 / UCS-2 encoding and segment counts              (leaf)
    language   household language tags -> template language; times    (leaf)
    context    NoticeContext, TemplateKey, the variables templates see
    sandbox    the Jinja2 sandbox and the syntax policy for operator templates
    templates  load, compile once, render with language fallback, NoticeCache
    checks     validate a template folder: every problem, with file and line
    elements   what a drinking-water notice must say, per channel and language (pure)
    preview    what the dispatcher sees before approving a notice
    planner    households -> draft deliveries (pure);  audience: counts by column operations
    service    NoticeService: plan, approve, replan, preview (through the store)
    fanout     dispatcher, Kafka jobs, senders, reconciler, finality sweep
    ratelimit  the per-channel token bucket;  runtime: what the app holds while it runs

The delivery state machine and the rows are in :mod:`incident.deliveries`; the carriers in
:mod:`incident.adapters.carriers`; the carrier webhooks in :mod:`incident.api.webhooks`.
"""

from incident.notices.checks import Problem, Severity, sample_contexts, validate_templates
from incident.notices.context import VARIABLES, Advisory, NoticeContext, TemplateKey, template_variables
from incident.notices.language import format_time, match_language
from incident.notices.preview import Preview, preview, preview_notice
from incident.notices.sms import Encoding, SmsInfo, sms_info
from incident.notices.templates import (
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
