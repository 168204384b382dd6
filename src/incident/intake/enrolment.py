"""Residents sign themselves up: the double opt-in flow around the pure rules of
:mod:`incident.households.enrolment`.

``enrol`` checks the sign-up, admits it under the rate limits (counted in the store, so they
hold across instances) and sends the one-time code, the only thing ever sent to a contact
that was not confirmed. ``confirm`` counts the try before it compares the code (in constant
time); the right code puts the household in the registry (source ``self``) and writes a new
registry version, which every instance's service area picks up (:mod:`incident.reload`). The
signed link then reads, changes or removes that household.

Answers never tell whether a number is already in the registry: ``enrol`` looks nothing up.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from incident.core.clock import Clock, isoformat
from incident.core.errors import CarrierError, Gone, InvalidInput, NotFound, TooManyRequests
from incident.core.metrics import Metrics
from incident.households.enrolment import (
    CODE_TTL_S,
    MAX_TRIES,
    BadLink,
    Choices,
    Pending,
    Rules,
    SentTo,
    changed,
    client_key,
    code_digest,
    code_matches,
    contact_key,
    household,
    is_enrolment_id,
    new_account_id,
    new_code,
    new_enrolment_id,
    pending_of,
    read_link,
    sign_link,
)
from incident.households.model import Household, HouseholdSource
from incident.intake.households import VERSION_KEY
from incident.settings import EnrolmentSettings
from incident.store import Store
from incident.store.ports import Enrolment, EnrolmentLimits

log = logging.getLogger(__name__)

#: Sends ``(number, text)`` by SMS; ``(address, subject, text, language)`` by email.
SendSms = Callable[[str, str], Awaitable[None]]
SendEmail = Callable[[str, str, str, str], Awaitable[None]]

_HOUR = timedelta(hours=1)

SECRET_KEY = "enrolment.secret"  # noqa: S105 (the meta key, not a secret)

_CODE_TEXT = {
    "en": "{code} is your code to get {utility} alerts. It works for 15 minutes. "
    "If you did not ask for it, ignore this message.",
    "zh": "{code}是您订阅{utility}通知的验证码，15分钟内有效。如非本人操作，请忽略本消息。",  # noqa: RUF001
}
_CODE_SUBJECT = {"en": "Your code for {utility} alerts", "zh": "{utility}通知验证码"}


def code_text(language: str, code: str, utility: str) -> str:
    """The code's message in the household's language (Chinese for any ``zh`` tag, else English)."""
    key = "zh" if language.lower().split("-")[0] == "zh" else "en"
    return _CODE_TEXT[key].format(code=code, utility=utility)


def code_subject(language: str, utility: str) -> str:
    key = "zh" if language.lower().split("-")[0] == "zh" else "en"
    return _CODE_SUBJECT[key].format(utility=utility)


@dataclass(frozen=True)
class Started:
    enrolment_id: str
    sent_to: SentTo
    expires_at: str


@dataclass(frozen=True)
class Confirmed:
    account_id: str
    token: str
    link_expires_at: str


class EnrolmentService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: EnrolmentSettings,
        rules: Callable[[], Rules],
        *,
        utility: str,
        send_sms: SendSms,
        send_email: SendEmail | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._rules = rules
        self._utility = utility
        self._send_sms = send_sms
        self._send_email = send_email
        self._metrics = metrics
        self._secret = settings.secret.encode()

    async def start(self) -> None:
        """Take the per-database secret when none is configured (made by the first instance)."""
        if not self._secret:
            self._secret = (await self._store.meta_default(SECRET_KEY, secrets.token_hex(32))).encode()

    @property
    def rules(self) -> Rules:
        return self._rules()

    @property
    def email_available(self) -> bool:
        return self._send_email is not None

    def _now(self) -> datetime:
        return self._clock.now()

    async def enrol(self, pending: Pending, remote: str) -> Started:
        if pending.email and self._send_email is None:
            raise InvalidInput("email: sign-up by email is not available here; give a mobile number")
        now = self._now()
        enrolment_id, code = new_enrolment_id(), new_code()
        expires_at = isoformat(now + timedelta(seconds=CODE_TTL_S))
        row = Enrolment(
            enrolment_id=enrolment_id,
            client_key=client_key(self._secret, remote),
            contact_key=contact_key(self._secret, pending.contact),
            pending=pending,
            code_digest=code_digest(self._secret, enrolment_id, code),
            expires_at=expires_at,
            created_at=isoformat(now),
        )
        window = timedelta(seconds=self._settings.window_s)
        limits = EnrolmentLimits(
            since=isoformat(now - window), per_client=self._settings.per_client,
            per_contact=self._settings.per_contact, per_hour=self._settings.codes_per_hour,
            hour_since=isoformat(now - _HOUR),
        )  # fmt: skip
        # Kept a day (and at least a window): long enough to count, short enough to forget.
        purge_before = isoformat(now - max(window, timedelta(days=1)))
        admission = await self._store.admit_enrolment(row, limits, purge_before)
        if not admission.admitted:
            oldest = datetime.fromisoformat(admission.oldest) if admission.oldest else now
            if admission.limit == "service":
                window = _HOUR
                # Many numbers from many clients: most likely someone sending codes at our cost.
                log.warning(
                    "sign-ups refused: %d codes sent in the last hour ([enrolment] codes_per_hour)",
                    self._settings.codes_per_hour,
                )
            if self._metrics is not None:
                self._metrics.enrolments_refused.labels(admission.limit or "client").inc()
            wait = int((oldest + window - now).total_seconds()) + 1
            # One answer whichever limit it was (it must not tell a known contact from another).
            raise TooManyRequests("too many sign-ups: try again later", retry_after=max(wait, 1))
        await self._send_code(pending, code)
        return Started(enrolment_id, pending.sent_to, expires_at)

    async def _send_code(self, pending: Pending, code: str) -> None:
        try:
            if pending.sent_to is SentTo.sms:
                await self._send_sms(pending.phone, code_text(pending.language, code, self._utility))
            elif self._send_email is not None:
                subject = code_subject(pending.language, self._utility)
                text = code_text(pending.language, code, self._utility)
                await self._send_email(pending.email, subject, text, pending.language)
        except CarrierError as err:
            # The answer stays the same (it must not tell a working number from another); the
            # resident asks again. No number in the log.
            log.warning("enrolment code not sent (%s): %s", pending.sent_to, err.message)

    async def _explain(self, enrolment_id: str) -> None:
        """Why a try was not counted: raise the matching error."""
        found = await self._store.get_enrolment(enrolment_id)
        if found is None:
            raise NotFound("no such sign-up: start again")
        if found.status == "confirmed":
            raise Gone("this sign-up is already confirmed", code="already_confirmed")
        if found.status == "dead" or found.tries >= MAX_TRIES:
            raise Gone("too many wrong codes: start again", code="too_many_tries")
        raise Gone("the code has expired: start again", code="code_expired")

    async def confirm(self, enrolment_id: str, code: str) -> Confirmed:
        if not is_enrolment_id(enrolment_id):
            raise NotFound("no such sign-up: start again")
        if not code.strip().isdecimal() or not code.strip().isascii():
            raise InvalidInput("the code is the six digits that were sent", code="wrong_code")
        now = self._now()
        tried = await self._store.try_enrolment(enrolment_id, isoformat(now), MAX_TRIES)
        if tried is None:
            await self._explain(enrolment_id)
            raise AssertionError("unreachable")  # _explain always raises
        if not code_matches(self._secret, enrolment_id, code, tried.code_digest):
            left = MAX_TRIES - tried.tries
            if left <= 0:
                await self._store.finish_enrolment(enrolment_id, None)
                raise Gone("too many wrong codes: start again", code="too_many_tries")
            raise InvalidInput(
                f"wrong code: {left} {'try' if left == 1 else 'tries'} left", code="wrong_code"
            )
        # The same contact signed up again: its household is updated, not doubled.
        account_id = await self._store.enrolled_household(tried.contact_key) or new_account_id()
        if not await self._store.finish_enrolment(enrolment_id, household(tried.pending, account_id)):
            await self._explain(enrolment_id)
        await self._registry_changed()
        return self._link(account_id, enrolment_id, now)

    def _link(self, account_id: str, enrolment_id: str, now: datetime) -> Confirmed:
        until = now + timedelta(days=self._settings.link_days)
        token = sign_link(self._secret, account_id, enrolment_id, int(until.timestamp()))
        return Confirmed(account_id, token, isoformat(until))

    async def _registry_changed(self) -> None:
        await self._store.set_meta(VERSION_KEY, uuid.uuid4().hex)

    async def _household(self, token: str) -> Household:
        account_id, enrolment_id = read_link(self._secret, token, self._now().timestamp())
        found = await self._store.get_household(account_id)
        if found is None or found.source is not HouseholdSource.self_enrolled:
            raise Gone("this sign-up was removed", code="removed")
        # The contact signed up again (perhaps its number has a new owner now): only the
        # newest link reads or changes the household.
        if await self._store.current_enrolment(account_id) != enrolment_id:
            raise Gone("this link was replaced by a newer sign-up: use the newest link", code="link_replaced")
        return found

    async def read(self, token: str) -> tuple[str, Pending]:
        found = await self._household(token)
        return found.account_id, pending_of(found)

    async def change(self, token: str, choices: Choices) -> tuple[str, Pending]:
        found = await self._household(token)
        now = pending_of(found)
        new = changed(now, choices, self.rules)
        home = household(new, found.account_id)
        if home == household(now, found.account_id):
            return found.account_id, now  # nothing changed: no new registry version to rebuild for
        if home.priority == found.priority:  # a medical priority the utility confirmed stays so
            home = dataclasses.replace(home, priority_confirmed=found.priority_confirmed)
        # An update, never an insert: a removal through the link meanwhile is not undone.
        if not await self._store.update_self_household(home):
            raise Gone("this sign-up was removed", code="removed")
        await self._registry_changed()
        return found.account_id, new

    async def remove(self, token: str) -> None:
        found = await self._household(token)
        if not await self._store.remove_household(found.account_id):
            raise Gone("this sign-up was removed", code="removed")
        await self._registry_changed()


__all__ = ["BadLink", "Confirmed", "EnrolmentService", "Started", "code_text"]
