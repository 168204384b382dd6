"""Carrier webhooks: Twilio status callbacks, Gather digits and inbound SMS.

Every request is checked first: ``X-Twilio-Signature`` over the public URL and every posted
field (Twilio adds fields without notice), keyed with the auth token. A request that fails
gets 403 and changes nothing. Then:

- ``POST /hooks/twilio/status``: a message or call status moves its delivery forward by a
  compare-and-set, so a late, repeated or reordered callback never moves it backwards. An
  SMS that ends undelivered to a landline or unreachable handset gets one voice delivery as
  fallback; a call that was not answered (or busy) is tried again, a few times, spaced out.
- ``POST /hooks/twilio/gather``: ``Digits=1`` confirms the call's delivery.
- ``POST /hooks/twilio/inbound``: STOP / START / HELP (and 退订 / 订阅 / 帮助) change the
  sender's SMS opt-out; any other text is a report from the household on the incident's
  timeline. Each MessageSid is handled once: a replay changes nothing and is answered with
  no reply SMS.

A final status found by looking a delivery up at the carrier (its callback never came) is
applied by the same code as the callback (:func:`apply_status`, through :func:`make_settle`).

An unknown SID or sender is counted and answered 200 (Twilio retries nothing useful on an
error). Phone numbers are personal data: they never go into logs, events, errors or labels.

The decisions (:func:`parse_status`, :func:`decide_change`, :func:`voice_fallback`,
:func:`parse_keyword`, the TwiML) are pure; the three handlers do the I/O around them.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

import msgspec
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from prometheus_client import CollectorRegistry, Counter

from incident.adapters.carriers import CarrierStatus, twiml_message, twiml_say, valid_signature
from incident.api.endpoint import Handler, json_response
from incident.core.clock import isoformat
from incident.core.domain import EventDraft
from incident.core.errors import Forbidden, MalformedRequest, StoreError
from incident.deliveries.records import Delivery, DeliveryChange
from incident.deliveries.states import BEFORE_SEND, TWILIO_STATUS, DeliveryState, moves_forward
from incident.households.model import Channel, Household
from incident.keys import CLOCK, HOOK_METRICS, HOOK_OPTIONS, INCIDENTS, METRICS, SERVICE_AREA, SETTINGS, STORE
from incident.notices.fanout import Settle
from incident.notices.language import primary_subtag
from incident.notices.needs import channels_for_needs
from incident.notices.runtime import credentials
from incident.store import Store

__all__ = [
    "FALLBACK_CODES",
    "HOUSEHOLD_REPLY",
    "HookMetrics",
    "HookOptions",
    "Keyword",
    "StatusReport",
    "apply_status",
    "decide_change",
    "expect_for",
    "gather",
    "inbound_sms",
    "install_hooks",
    "make_settle",
    "make_status_callback",
    "parse_keyword",
    "parse_status",
    "public_url",
    "status_callback",
    "voice_fallback",
]

log = logging.getLogger(__name__)

S = DeliveryState
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
#: Timeline event type of a free-text SMS reply from a household.
HOUSEHOLD_REPLY: Final = "household_reply"
#: Longest reply text kept on the timeline.
MAX_REPLY_CHARS: Final = 1000
#: SMS error codes after which a voice call may still reach the household: unreachable
#: handset (30003), unknown handset (30005), landline or unreachable carrier (30006), and a
#: number that cannot take SMS (21614).
FALLBACK_CODES: Final = frozenset({"30003", "30005", "30006", "21614"})
#: Before a send (or between tries): only the sender moves a delivery on from these, never a
#: callback (a late callback of the previous try must not overtake the retry).
_BEFORE_SEND = BEFORE_SEND
_SMS_ENDED_BADLY = frozenset({S.undelivered, S.failed})
_NOT_ANSWERED = frozenset({S.no_answer, S.busy})


@dataclass(frozen=True)
class HookOptions:
    #: A call not answered (or busy) is tried again this many times (so at most 1 + this).
    voice_retries: int = 2
    #: Minutes between those tries.
    voice_retry_minutes: float = 10.0
    #: An SMS undelivered to a landline or unreachable handset becomes a voice call.
    sms_fallback_to_voice: bool = True


class Outcome(StrEnum):
    """What a webhook did: the closed set of the ``outcome`` metric label."""

    forbidden = "forbidden"
    invalid = "invalid"
    applied = "applied"
    stale = "stale"
    retry = "retry"
    fallback = "fallback"
    unknown_sid = "unknown_sid"
    confirmed = "confirmed"
    other_digits = "other_digits"
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"
    reply = "reply"
    unknown_sender = "unknown_sender"
    replay = "replay"


class HookMetrics:
    """Counters of the webhooks, on the app's registry (labels from closed sets only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhooks = Counter(
            "incident_twilio_webhooks",
            "Twilio webhooks by hook (status, gather, inbound; lookup: a status found by asking"
            " the carrier) and what they did",
            ["hook", "outcome"],
            registry=registry,
        )

    def count(self, hook: str, outcome: Outcome) -> None:
        self.webhooks.labels(hook, outcome.value).inc()


def install_hooks(app: web.Application, options: HookOptions | None = None) -> None:
    """Give ``app`` the webhooks' counters (so they show on /metrics before the first
    webhook) and, if given, their options. Call before the app starts."""
    app[HOOK_METRICS] = HookMetrics(app[METRICS].registry)
    if options is not None:
        app[HOOK_OPTIONS] = options


def hook_metrics(app: web.Application) -> HookMetrics:
    """The webhooks' counters, made by :func:`install_hooks` (``create_app`` calls it)."""
    return app[HOOK_METRICS]


# --- the signature -----------------------------------------------------------------------------


def _first(header: str | None) -> str:
    """The first value of a header a chain of proxies may have appended to."""
    return (header or "").split(",", 1)[0].strip()


def public_url(request: web.Request, public_base_url: str) -> str:
    """The URL Twilio requested (and signed): ``public_base_url`` + path and query, or, without
    one, rebuilt from ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` or the request itself."""
    path = request.raw_path
    if public_base_url:
        return public_base_url.rstrip("/") + path
    scheme = _first(request.headers.get("X-Forwarded-Proto")) or request.scheme
    host = _first(request.headers.get("X-Forwarded-Host")) or request.host
    return f"{scheme}://{host}{path}"


async def verified_form(request: web.Request, hook: str) -> MultiDictProxy[str]:
    """The posted fields, once the signature over all of them checks out (403 otherwise)."""
    settings = request.app[SETTINGS]
    twilio = settings.twilio
    auth_token = credentials(settings).auth_token  # the drill carrier's own when drilling
    signature = request.headers.get(SIGNATURE_HEADER, "")
    try:
        posted = await request.post()
    except ValueError as err:  # e.g. multipart/form-data without a boundary
        raise MalformedRequest(f"the form cannot be read: {err}", code="malformed_form") from err
    form: MultiDict[str] = MultiDict()
    for name, value in posted.items():
        if not isinstance(value, str):  # a file upload: Twilio never sends one
            signature = ""
            break
        form.add(name, value)
    url = public_url(request, twilio.public_base_url)
    if not valid_signature(auth_token, url, form, signature):
        hook_metrics(request.app).count(hook, Outcome.forbidden)
        log.warning("twilio %s webhook refused: missing or wrong %s", hook, SIGNATURE_HEADER)
        raise Forbidden(f"missing or invalid {SIGNATURE_HEADER}", code="bad_signature")
    return MultiDictProxy(form)


# --- status callbacks (pure) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One status callback: a message's or a call's SID and status, as Twilio posted them."""

    sid: str
    status: str
    #: The status as our state; None when Twilio sent one we do not know.
    state: DeliveryState | None
    error_code: str | None = None
    answered_by: str | None = None


def report_of(found: CarrierStatus) -> StatusReport:
    """A status looked up at the carrier, as the callback would have posted it."""
    status = found.status.strip().lower()
    return StatusReport(found.sid, status, TWILIO_STATUS.get(status), found.error_code, found.answered_by)


def parse_status(form: MultiDictProxy[str] | dict[str, str]) -> StatusReport | None:
    """The callback's SID and status (a message's, else a call's); None if it names neither."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        sid, status = form.get("CallSid"), form.get("CallStatus")
    if not sid or not status:
        return None
    status = status.strip().lower()
    error_code = (form.get("ErrorCode") or "").strip() or None
    answered_by = (form.get("AnsweredBy") or "").strip() or None
    return StatusReport(sid, status, TWILIO_STATUS.get(status), error_code, answered_by)


def expect_for(new: DeliveryState) -> frozenset[DeliveryState]:
    """States a callback reporting ``new`` may change: those ``new`` moves forward from,
    except the ones before a send (the compare-and-set keeps a delivery from going back)."""
    return frozenset(s for s in DeliveryState if moves_forward(s, new)) - _BEFORE_SEND


def _detail(report: StatusReport) -> str:
    parts = [f"twilio {report.status}"]
    if report.error_code:
        parts.append(f"error {report.error_code}")
    if report.answered_by:
        parts.append(f"answered by {report.answered_by}")
    return ", ".join(parts)


def decide_change(
    delivery: Delivery, report: StatusReport, options: HookOptions, now: datetime
) -> DeliveryChange | None:
    """The change a callback asks for, or None when it would not move the delivery forward.

    A call that was not answered or was busy goes to ``retry`` (due ``voice_retry_minutes``
    later) while it has been tried at most ``voice_retries`` times; after that it stays
    ``no_answer``/``busy``.
    """
    new = report.state
    if new is None or delivery.state in _BEFORE_SEND or not moves_forward(delivery.state, new):
        return None
    expect = expect_for(new)
    detail = _detail(report)
    tries = max(delivery.attempts, 1)
    if delivery.channel == Channel.voice and new in _NOT_ANSWERED and tries <= options.voice_retries:
        due = now + timedelta(minutes=options.voice_retry_minutes)
        return DeliveryChange(
            delivery_id=delivery.delivery_id,
            expect=expect,
            to=S.retry,
            error_code=report.error_code,
            next_attempt_at=isoformat(due),
            detail=f"{detail}; try {tries + 1} of {options.voice_retries + 1} at {isoformat(due)}",
        )
    return DeliveryChange(
        delivery_id=delivery.delivery_id, expect=expect, to=new, error_code=report.error_code, detail=detail
    )


def wants_voice_fallback(sms: Delivery, options: HookOptions) -> bool:
    return (
        options.sms_fallback_to_voice
        and sms.channel == Channel.sms
        and sms.state in _SMS_ENDED_BADLY
        and sms.error_code in FALLBACK_CODES
    )


def voice_fallback(
    sms: Delivery, household: Household | None, options: HookOptions, at: str
) -> Delivery | None:
    """The one voice delivery that stands in for an SMS a landline or an unreachable handset
    did not take; None when there is nothing to fall back to (or it is switched off)."""
    if not wants_voice_fallback(sms, options) or household is None:
        return None
    if not household.voice or Channel.voice in household.opt_out:
        return None
    if Channel.voice not in channels_for_needs(household.needs, [Channel.voice]):
        return None  # a deaf household is never called
    return Delivery(
        delivery_id=f"{sms.delivery_id}:voice",
        notice_id=sms.notice_id,
        incident_id=sms.incident_id,
        seq=sms.seq,
        channel=Channel.voice.value,
        address=household.voice,
        account_id=sms.account_id,
        language=sms.language,
        priority_rank=sms.priority_rank,
        state=S.planned,
        not_before=sms.not_before,
        fallback_of=sms.delivery_id,
        updated_at=at,
    )


# --- inbound SMS (pure) ------------------------------------------------------------------------


class Keyword(StrEnum):
    opt_out = "opt_out"
    opt_in = "opt_in"
    help = "help"


# YES is not here: it is how households answer the follow-up ("is your water back?").
_KEYWORDS: Final[dict[str, Keyword]] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "退订"), Keyword.opt_out),
    **dict.fromkeys(("START", "UNSTOP", "订阅"), Keyword.opt_in),
    **dict.fromkeys(("HELP", "INFO", "帮助"), Keyword.help),
}


def parse_keyword(body: str) -> Keyword | None:
    """The keyword a whole message is (trimmed, any case, full-width letters as ASCII)."""
    # NFKC reads full-width letters and punctuation as ASCII.
    word = unicodedata.normalize("NFKC", body).strip().strip(".!。").strip().upper()
    return _KEYWORDS.get(word)


def _chinese(language: str) -> bool:
    return primary_subtag(language) == "zh"


# Chinese text uses full-width punctuation on purpose.
_ZH_REPLIES: Final[dict[Keyword, str]] = {
    Keyword.opt_out: "您已退订{utility}的短信通知。回复“订阅”可重新订阅。",
    Keyword.opt_in: "您已重新订阅{utility}的短信通知。回复“退订”可退订，回复“帮助”获取帮助。",  # noqa: RUF001
    Keyword.help: "{utility}：停水、停气、停热等服务通知。回复“退订”取消，回复“订阅”恢复。"  # noqa: RUF001
    "客服电话：{phone}。",  # noqa: RUF001
}
_EN_REPLIES: Final[dict[Keyword, str]] = {
    Keyword.opt_out: "You are unsubscribed from {utility} text alerts. Reply START to subscribe again.",
    Keyword.opt_in: "You are subscribed again to {utility} text alerts. "
    "Reply STOP to unsubscribe, HELP for help.",
    Keyword.help: "{utility} service and outage alerts. Reply STOP to unsubscribe, START to subscribe again. "
    "Call {phone} for help.",
}
_ZH_THANKS: Final = "谢谢，您的回复已转交{utility}。"  # noqa: RUF001
_ZH_CONFIRMED: Final = "谢谢，已确认。"  # noqa: RUF001


def keyword_reply(keyword: Keyword, language: str, utility: str, phone: str) -> str:
    replies = _ZH_REPLIES if _chinese(language) else _EN_REPLIES
    return replies[keyword].format(utility=utility, phone=phone)


def reply_thanks(language: str, utility: str) -> str:
    if _chinese(language):
        return _ZH_THANKS.format(utility=utility)
    return f"Thank you. Your reply has been passed on to {utility}."


def confirm_thanks(language: str) -> str:
    return _ZH_CONFIRMED if _chinese(language) else "Thank you."


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="application/xml")


# --- the handlers ------------------------------------------------------------------------------


def _options(request: web.Request, fixed: HookOptions | None) -> HookOptions:
    return _options_of(request.app, fixed)


def _options_of(app: web.Application, fixed: HookOptions | None) -> HookOptions:
    return fixed if fixed is not None else app.get(HOOK_OPTIONS, HookOptions())


def _household(app: web.Application, account_id: str) -> Household | None:
    current = app.get(SERVICE_AREA)
    if current is None:
        return None
    index = current.value.households
    position = index.by_account.get(account_id)
    return None if position is None else index.households[position]


async def add_voice_fallback(app: web.Application, sms: Delivery, options: HookOptions, at: str) -> bool:
    """Plan the fallback call of an SMS that ended badly; True when it is new."""
    if not wants_voice_fallback(sms, options):
        return False
    store = app[STORE]
    fallback = voice_fallback(sms, _household(app, sms.account_id), options, at)
    if fallback is None or await store.opt_out_state(fallback.address, Channel.voice.value):
        return False
    added = await store.add_deliveries([fallback]) == 1
    if added:
        log.info("delivery %s: SMS error %s, voice call %s planned", sms.delivery_id, sms.error_code,
                 fallback.delivery_id)  # fmt: skip
    return added


async def apply_status(
    app: web.Application,
    delivery: Delivery,
    report: StatusReport,
    options: HookOptions,
    *,
    early: bool = False,
) -> tuple[Outcome, bool]:
    """Record a message's or call's status on its delivery (a compare-and-set that only moves
    it forward) and plan the voice fallback of an SMS that ended badly: what a status callback
    does, and a look-up whose callback never came. ``early``: the delivery has no SID yet
    (called back before the send's answer was recorded). Returns the outcome and whether a
    fallback call was planned."""
    store: Store = app[STORE]
    now = app[CLOCK].now()
    at = isoformat(now)
    change = decide_change(delivery, report, options, now)
    if change is not None and early:
        change = msgspec.structs.replace(change, carrier_sid=report.sid)
    outcome = Outcome.stale
    current: Delivery | None = delivery
    if change is not None:
        changed = await store.change_delivery(change, at)
        if changed is not None:
            outcome = Outcome.retry if changed.state == S.retry else Outcome.applied
            current = changed
        else:  # another callback got there first: judge the fallback on what it left
            current = await store.get_delivery(delivery.delivery_id)
    # Also on a repeat: the first time may have stopped between the change and the plan.
    fallback = current is not None and await add_voice_fallback(app, current, options, at)
    return outcome, fallback


def make_settle(app: web.Application) -> Settle:
    """What the fan-out's finality sweep calls with a status it looked up: the callback's code,
    counted under hook ``lookup``. True when the delivery moved on."""

    async def settle(delivery: Delivery, found: CarrierStatus) -> bool:
        metrics = hook_metrics(app)
        outcome, fallback = await apply_status(app, delivery, report_of(found), _options_of(app, None))
        metrics.count("lookup", outcome)
        if fallback:
            metrics.count("lookup", Outcome.fallback)
        return outcome is not Outcome.stale

    return settle


def make_status_callback(fixed: HookOptions | None = None) -> Handler:
    """The status handler; with ``fixed`` options it ignores ``app[HOOK_OPTIONS]``."""

    async def status_callback(request: web.Request) -> web.Response:
        """Twilio posts a message's or a call's status here (its StatusCallback)."""
        form = await verified_form(request, "status")
        metrics = hook_metrics(request.app)
        report = parse_status(form)
        if report is None:
            metrics.count("status", Outcome.invalid)
            return json_response({"outcome": Outcome.invalid.value})
        store: Store = request.app[STORE]
        delivery = await store.delivery_by_sid(report.sid)
        early = False
        if delivery is None and (named := request.query.get("d")):
            # Called back before the sender recorded the carrier's answer: the signed URL
            # names the delivery, which has no SID yet.
            delivery = await store.get_delivery(named)
            # No SID yet, or the SID of an earlier try (a call tried again) while this one is
            # being sent: the callback is about the send in flight.
            early = delivery is not None and (delivery.carrier_sid is None or delivery.state is S.sending)
            delivery = delivery if early else None
        if delivery is None:
            metrics.count("status", Outcome.unknown_sid)
            return json_response({"outcome": Outcome.unknown_sid.value})
        options = _options(request, fixed)
        outcome, fallback = await apply_status(request.app, delivery, report, options, early=early)
        metrics.count("status", outcome)
        if fallback:
            metrics.count("status", Outcome.fallback)
        return json_response({"outcome": outcome.value})

    return status_callback


async def gather(request: web.Request) -> web.Response:
    """The action of the call's <Gather>: ``Digits=1`` confirms the notice was heard."""
    form = await verified_form(request, "gather")
    metrics = hook_metrics(request.app)
    store: Store = request.app[STORE]
    sid = form.get("CallSid", "")
    delivery = await store.delivery_by_sid(sid) if sid else None
    if delivery is None:
        metrics.count("gather", Outcome.unknown_sid)
        return _xml(twiml_say(None, "en"))
    if form.get("Digits", "").strip() != "1":
        metrics.count("gather", Outcome.other_digits)
        return _xml(twiml_say(None, delivery.language))
    outcome = Outcome.stale
    if moves_forward(delivery.state, S.confirmed) and delivery.state not in _BEFORE_SEND:
        change = DeliveryChange(
            delivery_id=delivery.delivery_id,
            expect=expect_for(S.confirmed),
            to=S.confirmed,
            detail="twilio gather: pressed 1",
        )
        if await store.change_delivery(change, isoformat(request.app[CLOCK].now())) is not None:
            outcome = Outcome.confirmed
    metrics.count("gather", outcome)
    return _xml(twiml_say(confirm_thanks(delivery.language), delivery.language))


async def inbound_sms(request: web.Request) -> web.Response:
    """A household texted our number: a keyword changes its opt-out, any other text is a
    report on the timeline of the incident it was last notified about."""
    form = await verified_form(request, "inbound")
    metrics = hook_metrics(request.app)
    app = request.app
    store: Store = app[STORE]
    sender = form.get("From", "").strip()
    body = form.get("Body", "")
    if not sender:
        metrics.count("inbound", Outcome.invalid)
        return _xml(twiml_message(None))
    sid = form.get("MessageSid", "").strip()
    at = isoformat(app[CLOCK].now())
    # Noted before it is handled, forgotten if handling fails: a replay (Twilio retrying, or a
    # resend) finds it and changes nothing, not even a second reply SMS. A crash between
    # noting and handling loses that one message (the household can text again): rather that
    # than a second opt-out change or a second report on the timeline.
    if sid and not await store.record_inbound(sid, at):
        metrics.count("inbound", Outcome.replay)
        return _xml(twiml_message(None))
    try:
        return await _handle_inbound(app, sender, body, sid, at)
    except Exception as err:
        # Forgotten, so the carrier's retry is handled, only when nothing of it was written:
        # a write whose outcome is unknown may already be on the timeline.
        if sid and not (isinstance(err, StoreError) and err.outcome_unknown):
            await store.forget_inbound(sid)
        raise


async def _handle_inbound(app: web.Application, sender: str, body: str, sid: str, at: str) -> web.Response:
    metrics = hook_metrics(app)
    store: Store = app[STORE]
    notify = app[SETTINGS].notify
    latest = await store.latest_delivery_to(sender)
    language = latest.language if latest is not None else notify.default_language
    keyword = parse_keyword(body)
    if keyword is Keyword.opt_out or keyword is Keyword.opt_in:
        await store.set_opt_out(sender, Channel.sms.value, keyword is Keyword.opt_out, at)
    if keyword is not None:
        metrics.count("inbound", Outcome(keyword.value))
        return _xml(
            twiml_message(keyword_reply(keyword, language, notify.utility_name, notify.utility_phone))
        )
    text = body.strip()[:MAX_REPLY_CHARS]
    if latest is None or not text:
        metrics.count("inbound", Outcome.unknown_sender if latest is None else Outcome.invalid)
        return _xml(twiml_message(None))
    data = {
        "account_id": latest.account_id,
        "channel": Channel.sms.value,
        "text": text,
        "notice_id": latest.notice_id,
        "message_sid": sid,
    }
    draft = EventDraft(type=HOUSEHOLD_REPLY, actor="household", data=data)
    appended = await store.append(latest.incident_id, lambda _state: [draft])
    app[INCIDENTS].publish([appended])
    metrics.count("inbound", Outcome.reply)
    return _xml(twiml_message(reply_thanks(language, notify.utility_name)))


status_callback = make_status_callback()
