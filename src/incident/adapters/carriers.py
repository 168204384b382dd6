"""Carrier adapter: SMS and voice through the official ``twilio`` library (async client).

The only module that imports the Twilio REST client. Its errors become :class:`CarrierError`
here, marked retryable (HTTP 429, 5xx, timeouts, connection errors) or permanent (an invalid,
unsubscribed or landline number): senders never look at a vendor type.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, urlencode
from xml.sax.saxutils import escape, quoteattr

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client

from incident.core.errors import CarrierError

#: Twilio error codes that are the number's fault: retrying cannot help.
PERMANENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614, 30003, 30005, 30006, 30007, 30008, 21217})
#: Our side is wrong (credentials, sender number): no delivery's fault, so never burn the
#: deliveries on it; they wait and are retried once the configuration is fixed.
OUR_SIDE_CODES = frozenset({20003, 20005, 21603, 21606, 21659, 21212})
#: Of those, the ones where a voice call may still reach the household.
VOICE_MAY_HELP = frozenset({21614, 30003, 30005, 30006})

#: Connections to the carrier at once; sends beyond it wait for one (the fan-out sends
#: at most this many at a time, waiting in line costs more than it gains).
CONNECTIONS = 64
#: The longest a carrier call may take (the client's own timeout): after that, a call that
#: started is over, whether or not its answer was recorded.
CALL_TIMEOUT_S = 15.0

#: Text-to-speech voice and language, by the language's primary subtag (Chinese needs
#: Polly.Zhiyu with cmn-CN); any other language is spoken by the English voice.
VOICES: dict[str, tuple[str, str]] = {
    "zh": ("Polly.Zhiyu", "cmn-CN"),
    "en": ("Polly.Joanna", "en-US"),
}
_CONFIRMED_PROMPT = {"zh": "收到本通知请按1确认。", "en": "Press 1 to confirm you received this message."}
_XML = '<?xml version="1.0" encoding="UTF-8"?>'


@dataclass(frozen=True)
class Accepted:
    sid: str
    status: str


@dataclass(frozen=True)
class CarrierStatus:
    """A message's or a call's status as the carrier reports it when asked by SID: the same
    facts a status callback posts (Twilio's status word, error code, AnsweredBy)."""

    sid: str
    status: str
    error_code: str | None = None
    answered_by: str | None = None


# --- TwiML: built here only, with one language rule --------------------------------------------


def voice_language(language: str) -> str:
    """The key of :data:`VOICES` for a language tag: its primary subtag (``zh`` for ``zh-CN``,
    ``zh_TW`` or ``zh-Hans``), English when there is no voice for it."""
    primary = language.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in VOICES else "en"


def _say(text: str, language: str) -> str:
    voice, lang = VOICES[voice_language(language)]
    return f"<Say voice={quoteattr(voice)} language={quoteattr(lang)}>{escape(text)}</Say>"


def twiml_for(text: str, language: str, gather_action: str) -> str:
    """A notice call: speak the notice in the household's language, then gather one digit (press 1)."""
    say = _say(text, language)
    prompt = _say(_CONFIRMED_PROMPT[voice_language(language)], language)
    gather = (
        f'<Gather numDigits="1" timeout="8" action={quoteattr(gather_action)} method="POST">'
        f"{say}{prompt}</Gather>"
    )
    return f"{_XML}<Response>{gather}{say}</Response>"


def twiml_message(text: str | None) -> str:
    """A messaging webhook's answer: one reply SMS, or none."""
    if text is None:
        return f"{_XML}<Response/>"
    return f"{_XML}<Response><Message>{escape(text)}</Message></Response>"


def twiml_say(text: str | None, language: str) -> str:
    """A voice webhook's answer: say ``text`` in ``language`` (then the call ends)."""
    if text is None:
        return f"{_XML}<Response/>"
    return f"{_XML}<Response>{_say(text, language)}</Response>"


# --- webhook signatures ---------------------------------------------------------------------------


def valid_signature(auth_token: str, url: str, form: Mapping[str, str], signature: str) -> bool:
    """Whether ``signature`` (``X-Twilio-Signature``) is Twilio's over ``url`` and every posted
    field, keyed with ``auth_token`` (the twilio library's own check)."""
    if not (auth_token and signature):
        return False
    return bool(RequestValidator(auth_token).validate(url, form, signature))


def _carrier_error(err: TwilioRestException) -> CarrierError:
    code = int(err.code) if err.code is not None else None
    status = int(err.status or 0)
    retryable = status == 429 or status >= 500 or (code is not None and code in (20429, 20500, 20503))
    if code in PERMANENT_CODES:
        retryable = False
    if code in OUR_SIDE_CODES:
        retryable = True
    return CarrierError(
        f"carrier refused the message: HTTP {status}, code {code}", retryable=retryable, carrier_code=code
    )


#: quote_plus for ASCII text, as one table lookup per character (C speed): letters, digits
#: and ``_.-~`` as they are, space as ``+``, everything else as ``%XX``.
_UNRESERVED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~")
_ASCII_QUOTED = str.maketrans(
    {c: chr(c) if chr(c) in _UNRESERVED else "+" if c == 32 else f"%{c:02X}" for c in range(128)}
)


@functools.lru_cache(maxsize=1024)
def _quote_text(value: str, safe: str, encoding: str | None, errors: str | None) -> str:
    if not safe and value.isascii():
        return value.translate(_ASCII_QUOTED)
    return quote_plus(value, safe, encoding, errors)


def _quote(
    value: str | bytes, safe: str | bytes = "", encoding: str | None = None, errors: str | None = None
) -> str:
    """``quote_plus``, made cheap: every request of a notice carries the same text and
    sender (remembered), and the recipient's number and its own callback URL (ASCII: one
    table lookup per character, in C). Quoting byte by byte cost more than the rest of the
    form."""
    if isinstance(value, bytes):
        return quote_plus(value, safe)
    return _quote_text(value, safe if isinstance(safe, str) else safe.decode(), encoding, errors)


def form_body(data: dict[str, object]) -> bytes:
    """The form as aiohttp would encode it (``urlencode(..., doseq=True)``), quoted through
    :func:`_quote`."""
    return urlencode(data, doseq=True, quote_via=_quote).encode()


class _QuietTwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The library's HTTP client, minus the costs it pays on every call of a fan-out: it logs
    each request and response at INFO, query parameters included (a lookup by recipient would
    put phone numbers in our logs); it builds an ``aiohttp.BasicAuth`` per request, which
    aiohttp 3.14 deprecates with a warning each time; it re-encodes the same notice text for
    every recipient; and it keeps a copy of the last request for its own tests. Its session
    also gets a connection limit and a timeout of ours (the library's own timeout is
    ignored). The request and its answer are the library's own."""

    def __init__(self, *, connections: int, timeout_s: float) -> None:
        super().__init__(pool_connections=False)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._authorizations: dict[tuple[str, str], str] = {}

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Response:
        del timeout  # the session's own applies
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = self._authorizations.get(auth) or self._authorization(auth)
        body = None
        if data:
            body = form_body(data)
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        async with self.session.request(
            method.upper(), url, params=params, data=body, headers=sent, allow_redirects=allow_redirects
        ) as response:
            return Response(response.status, await response.text(), response.headers)

    def _authorization(self, auth: tuple[str, str]) -> str:
        value: str = aiohttp.encode_basic_auth(auth[0], auth[1])
        self._authorizations[auth] = value
        return value


class TwilioCarrier:
    """One async Twilio client for the whole service (create inside the running loop)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base_url: str,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        connections: int = CONNECTIONS,
    ) -> None:
        self._http = _QuietTwilioHttpClient(connections=connections, timeout_s=timeout_s)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # Messages and Calls live in the api domain: pointing it elsewhere reaches any
        # Twilio-compatible server (the drill carrier, a test server).
        self._client.api.base_url = api_base_url.rstrip("/")

    async def close(self) -> None:
        await self._http.close()

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except TwilioRestException as err:
            raise _carrier_error(err) from err
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            raise CarrierError(f"carrier not reached ({type(err).__name__})", retryable=True) from err
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as err:
            # The request may have reached the carrier (a garbled or missing answer): sending it
            # again could text twice.
            raise CarrierError(
                f"carrier did not answer ({type(err).__name__}); the outcome is unknown",
                retryable=True,
                outcome_unknown=True,
            ) from err

    async def send_sms(self, to: str, from_: str, body: str, status_callback: str) -> Accepted:
        message = await self._call(
            self._client.messages.create_async(to=to, from_=from_, body=body, status_callback=status_callback)
        )
        return Accepted(message.sid, message.status)

    async def call(self, to: str, from_: str, twiml: str, status_callback: str) -> Accepted:
        call = await self._call(
            self._client.calls.create_async(
                to=to, from_=from_, twiml=twiml, status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                machine_detection="DetectMessageEnd",
            )
        )  # fmt: skip
        return Accepted(call.sid, call.status)

    async def find_calls(self, to: str, since: datetime) -> list[tuple[str, str]]:
        """Calls to ``to`` started since ``since``: (sid, status), for the same reason."""
        found = await self._call(self._client.calls.list_async(to=to, start_time_after=since, limit=20))
        return [(c.sid, c.status) for c in found]

    async def message_status(self, sid: str) -> CarrierStatus:
        """The message's status now (Twilio's Message resource, fetched by SID): for a final
        status whose callback never came (it arrived while we were down)."""
        m = await self._call(self._client.messages(sid).fetch_async())
        code = None if m.error_code is None else str(m.error_code)
        return CarrierStatus(sid, str(m.status or ""), code)

    async def call_status(self, sid: str) -> CarrierStatus:
        """The call's status now (Twilio's Call resource, fetched by SID)."""
        c = await self._call(self._client.calls(sid).fetch_async())
        return CarrierStatus(sid, str(c.status or ""), answered_by=c.answered_by or None)

    async def find_sms(self, to: str, since: datetime) -> list[tuple[str, str, str]]:
        """Messages to ``to`` sent since ``since``: (sid, status, body), to learn the fate of a
        send interrupted before its answer was recorded."""
        found = await self._call(self._client.messages.list_async(to=to, date_sent_after=since, limit=20))
        return [(m.sid, m.status, m.body or "") for m in found]


class PushGateway:
    """App push through a gateway of the FCM HTTP v1 shape (the drill carrier answers it too)."""

    def __init__(
        self, url: str, bearer: str, session: aiohttp.ClientSession, *, timeout_s: float = 15.0
    ) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {bearer}"}
        self._session = session
        self._timeout = timeout_s

    async def send(self, device_token: str, title: str, body: str, data: dict[str, str]) -> Accepted:
        message = {
            "message": {
                "token": device_token,
                "notification": {"title": title, "body": body},
                "data": data,
                "android": {"priority": "high"},
            }
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.post(self._url, json=message, headers=self._headers) as resp:
                    answer = await resp.json(content_type=None)
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            # Nothing went out: safe to try again.
            raise CarrierError(f"push gateway not reached ({type(err).__name__})", retryable=True) from err
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            # The gateway may have taken it, and it keeps nothing we could ask: the sender gives
            # it up rather than push twice (the same rule as an SMS whose answer was lost).
            raise CarrierError(
                f"push gateway did not answer ({type(err).__name__}); the outcome is unknown",
                retryable=True,
                outcome_unknown=True,
            ) from err
        if status == 200 and isinstance(answer, dict) and "name" in answer:
            return Accepted(str(answer["name"]), "sent")
        retryable = status == 429 or status >= 500
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise CarrierError(
            f"push gateway refused the message: HTTP {status}", retryable=retryable, retry_after=wait
        )
