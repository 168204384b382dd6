"""The drill carrier's state and behaviour, apart from HTTP: accept or refuse a send, remember
it, plan its outcome, run its callbacks, simulate inbound SMS.

``DrillCarrier`` is what tests reach through ``app[DRILL]``; the views in ``drill`` only
parse requests and answer JSON.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import aiohttp

from incident.carriersim.callbacks import Chain, PostResult, Scheduler, WebhookPoster
from incident.carriersim.config import DrillConfig
from incident.carriersim.outcome import Step, StepKind, plan_call, plan_sms
from incident.carriersim.records import CallRecord, MessageRecord, Records
from incident.carriersim.segments import num_segments
from incident.carriersim.wire import (
    TwilioError,
    call_status_params,
    gather_action,
    gather_params,
    inbound_sms_params,
    is_e164,
    is_http_url,
    is_sender,
    mask,
    message_status_params,
    twiml_params,
)

__all__ = ["DrillCarrier", "DrillStats", "InboundResult"]

log = logging.getLogger(__name__)

Form = Mapping[str, str]
_MAX_BODY = 1600
_CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
_LOG_EVERY_S = 10.0
_SERVER_ERRORS = {500: (20500, "Internal Server Error"), 503: (20503, "Service Unavailable")}


@dataclass(slots=True)
class DrillStats:
    messages: int = 0
    calls: int = 0
    #: Refused creates by Twilio error code (21211, 21610, 20429, ...).
    refused: Counter[int] = field(default_factory=Counter)
    callbacks_posted: int = 0
    #: Callbacks that got no answer or an answer other than 2xx.
    callbacks_failed: int = 0
    gathers_posted: int = 0
    twiml_fetched: int = 0
    inbound_posted: int = 0

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["refused"] = {str(code): count for code, count in sorted(self.refused.items())}
        return data


@dataclass(frozen=True, slots=True)
class InboundResult:
    sid: str
    status: int
    #: What the webhook answered (TwiML, e.g. a <Message> reply).
    text: str


def _sid(prefix: str) -> str:
    return prefix + os.urandom(16).hex()


def _now() -> datetime:
    return datetime.now(UTC)


class DrillCarrier:
    """One simulated Twilio account."""

    def __init__(self, config: DrillConfig) -> None:
        self.config = config
        self.stats = DrillStats()
        #: App pushes accepted (title, body, token), oldest first; bounded like the records.
        self.pushes: collections.deque[dict[str, str]] = collections.deque(maxlen=config.max_records)
        self.messages: Records[MessageRecord] = Records(config.max_records)
        self.calls: Records[CallRecord] = Records(config.max_records)
        self._http_rng = random.Random(config.seed)  # noqa: S311 - a simulation, not a secret
        self._forced: deque[int] = deque()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._poster: WebhookPoster | None = None
        self._scheduler: Scheduler[MessageRecord | CallRecord] | None = None
        self._last_failure_log = -_LOG_EVERY_S
        self._unlogged_failures = 0

    # -- lifecycle (driven by the app's cleanup contexts) --------------------------------------

    def attach(self, session: aiohttp.ClientSession) -> None:
        self._poster = WebhookPoster(session, self.config.auth_token, self.config.callback_timeout_s)

    def start_callbacks(self) -> None:
        if self.config.callbacks:
            self._scheduler = Scheduler(self._run_step, self.config.callback_concurrency)
            self._scheduler.start()

    async def stop_callbacks(self) -> None:
        if self._scheduler is not None:
            await self._scheduler.stop()
            self._scheduler = None

    async def wait_idle(self) -> None:
        """Until every callback planned so far has been posted (tests: then look)."""
        if self._scheduler is not None:
            await self._scheduler.wait_idle()

    @property
    def callbacks_pending(self) -> int:
        return self._scheduler.pending if self._scheduler else 0

    # -- misbehaviour ------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` creates with ``status`` (429, 500 or 503), creating nothing."""
        if status != 429 and status not in _SERVER_ERRORS:
            raise ValueError(f"fail_next: status must be 429, 500 or 503, not {status}")
        self._forced.extend([status] * count)

    def _injected_error(self) -> None:
        status = self._forced.popleft() if self._forced else 0
        if not status:
            u = self._http_rng.random()
            if u < self.config.http_429_share:
                status = 429
            elif u < self.config.http_429_share + self.config.http_5xx_share:
                status = 500 if self._http_rng.random() < 0.5 else 503
        if status == 429:
            self._refuse(429, 20429, "Too Many Requests", {"Retry-After": str(self.config.retry_after_s)})
        if status:
            code, message = _SERVER_ERRORS[status]
            self._refuse(status, code, message)

    def _refuse(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.stats.refused[code] += 1
        raise TwilioError(status, code, message, headers)

    # -- sends -------------------------------------------------------------------------------

    def _attempt(self, channel: str, to: str) -> int:
        key = (channel, to)
        attempt = self._attempts[key]
        self._attempts[key] = attempt + 1
        if len(self._attempts) > 4 * self.config.max_records:
            self._attempts.clear()
        return attempt

    def _status_callback(self, form: Form) -> str | None:
        callback = form.get("StatusCallback") or None
        if callback is not None and not is_http_url(callback):
            self._refuse(400, 21609, "Invalid StatusCallback URL")
        return callback

    def create_message(self, form: Form) -> MessageRecord:
        """Validate like Twilio, then accept: raises TwilioError when refused."""
        self._injected_error()
        to = form.get("To", "")
        from_ = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        if not to:
            self._refuse(400, 21604, "A 'To' phone number is required.")
        if not is_e164(to):
            self._refuse(400, 21211, f"Invalid 'To' Phone Number: {mask(to)}")
        if not from_ and not service:
            self._refuse(400, 21603, "A 'From' phone number is required.")
        if from_ and not is_sender(from_):
            self._refuse(400, 21212, f"Invalid From Number (caller ID): {mask(from_)}")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            self._refuse(400, 21602, "Message body is required.")
        if len(body) > _MAX_BODY:
            self._refuse(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to == from_:
            self._refuse(400, 21266, "'To' and 'From' number cannot be the same")
        callback = self._status_callback(form)
        if to in self.config.opted_out:
            self._refuse(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.config.not_sms_capable:
            self._refuse(400, 21614, f"'To' number {mask(to)} is not a valid mobile number")

        plan = plan_sms(
            self.config, to, self._attempt("sms", to), callback=bool(callback) and self.config.callbacks
        )
        mono = time.monotonic()
        record = MessageRecord(
            sid=_sid("SM"),
            seq=self.messages.next_seq(),
            created=_now(),
            created_mono=mono,
            timeline=plan.timeline,
            to=to,
            from_=from_ or self.config.messaging_service_from,
            body=body,
            num_segments=num_segments(body),
            outcome=plan.outcome,
            error_code=plan.error_code,
            status_callback=callback,
            messaging_service_sid=service or None,
        )
        self.messages.add(record)
        self.stats.messages += 1
        self._submit(record, plan.steps, mono)
        return record

    def create_call(self, form: Form, events: list[str]) -> CallRecord:
        """Validate like Twilio, then accept: raises TwilioError when refused."""
        self._injected_error()
        to = form.get("To", "")
        from_ = form.get("From", "")
        twiml = form.get("Twiml") or None
        url = form.get("Url") or None
        if not to:
            self._refuse(400, 21201, "No 'To' number is specified")
        if not is_e164(to):
            self._refuse(400, 21211, f"Invalid 'To' Phone Number: {mask(to)}")
        if not from_:
            self._refuse(400, 21213, "No 'From' number is specified")
        if not is_e164(from_):
            self._refuse(400, 21212, f"Invalid From Number (caller ID): {mask(from_)}")
        if twiml is None and url is None and not form.get("ApplicationSid"):
            self._refuse(400, 21205, "A 'Url', 'Twiml' or 'ApplicationSid' parameter is required.")
        if url is not None and not is_http_url(url):
            self._refuse(400, 21205, "Url is not a valid URL")
        callback = self._status_callback(form)
        asked = frozenset(word for value in events for word in value.split() if word in _CALL_EVENTS)

        plan = plan_call(
            self.config,
            to,
            self._attempt("voice", to),
            callback=bool(callback) and self.config.callbacks,
            events=asked,
            fetch_twiml=twiml is None and url is not None and self.config.callbacks,
        )
        steps = plan.steps if self.config.callbacks else ()
        mono = time.monotonic()
        record = CallRecord(
            sid=_sid("CA"),
            seq=self.calls.next_seq(),
            created=_now(),
            created_mono=mono,
            timeline=plan.timeline,
            to=to,
            from_=from_,
            outcome=plan.outcome,
            duration_s=plan.duration_s,
            twiml=twiml,
            url=url,
            status_callback=callback,
            machine_detection=form.get("MachineDetection") or None,
            events=asked,
            gather=gather_action(twiml) if twiml else None,
        )
        self.calls.add(record)
        self.stats.calls += 1
        self._submit(record, steps, mono)
        return record

    def _submit(self, record: MessageRecord | CallRecord, steps: tuple[Step, ...], mono: float) -> None:
        if steps and self._scheduler is not None:
            self._scheduler.submit(Chain(record, steps, mono))

    # -- callbacks ---------------------------------------------------------------------------

    async def _run_step(self, chain: Chain[MessageRecord | CallRecord]) -> None:
        step, record = chain.step, chain.record
        sid = self.config.account_sid
        if step.kind is StepKind.status:
            assert record.status_callback is not None
            if isinstance(record, MessageRecord):
                params = message_status_params(record, sid, step.status)
            else:
                params = call_status_params(record, sid, step.status, chain.posted, _now())
            token = f"{record.sid}-{step.status}"
            chain.posted += 1
            if await self._post(record.status_callback, params, token=token):
                self.stats.callbacks_posted += 1
        elif step.kind is StepKind.twiml and isinstance(record, CallRecord) and record.url:
            result = await self._post(record.url, twiml_params(record, sid), token=f"{record.sid}-twiml")
            if result is not None:
                self.stats.twiml_fetched += 1
                record.gather = gather_action(result.text, record.url)
        elif step.kind is StepKind.gather and isinstance(record, CallRecord) and record.gather:
            action, method = record.gather
            params = gather_params(record, sid, "1")
            if await self._post(action, params, method=method, token=f"{record.sid}-gather"):
                self.stats.gathers_posted += 1

    async def _post(
        self, url: str, params: dict[str, str], *, method: str = "POST", token: str
    ) -> PostResult | None:
        """Post one webhook; None (and counted) when it failed."""
        assert self._poster is not None, "the drill app's client session is not open"
        try:
            result = await self._poster.post(url, params, method=method, idempotency_token=token)
        except (aiohttp.ClientError, TimeoutError) as err:
            self._failed(url, type(err).__name__)
            return None
        if not 200 <= result.status < 300:
            self._failed(url, f"HTTP {result.status}")
            return None
        return result

    def _failed(self, url: str, why: str) -> None:
        """Count a failed webhook; log at most one line per ``_LOG_EVERY_S`` seconds."""
        self.stats.callbacks_failed += 1
        self._unlogged_failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= _LOG_EVERY_S:
            log.warning(
                "drill carrier: %d webhook(s) failed, the last to %s: %s",
                self._unlogged_failures,
                url.split("?")[0],
                why,
            )
            self._last_failure_log, self._unlogged_failures = now, 0

    # -- inbound -----------------------------------------------------------------------------

    async def inbound_sms(self, from_: str, to: str, body: str, url: str | None = None) -> InboundResult:
        """Post an incoming SMS (e.g. STOP) to ``url`` or the configured inbound webhook, signed.
        Raises ValueError when there is nowhere to post; aiohttp.ClientError when it failed."""
        target = url or self.config.inbound_sms_url
        if not target:
            raise ValueError("no inbound_sms_url configured and no url given")
        assert self._poster is not None, "the drill app's client session is not open"
        sid = _sid("SM")
        params = inbound_sms_params(self.config.account_sid, sid, from_, to, body, num_segments(body))
        result = await self._poster.post(target, params, idempotency_token=f"{sid}-received")
        self.stats.inbound_posted += 1
        log.debug("drill carrier: inbound SMS from %s answered %d", mask(from_), result.status)
        return InboundResult(sid, result.status, result.text)
