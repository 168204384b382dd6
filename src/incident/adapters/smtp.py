"""Email through an SMTP server (``[email]``), with ``aiosmtplib``.

One connection per message, at most ``connections`` at once: a notice's emails are spread
over a cluster's senders, each sending a few at a time, and a connection that stays open
between notices would only go stale. What went wrong maps onto the carrier errors the
fan-out already knows (:class:`~incident.core.errors.CarrierError`):

- the server not reached, its greeting, STARTTLS, login or MAIL FROM refused: nothing was
  sent, so it is tried again (``retryable``, with the channel's backoff), whatever the reply
  code: it is the server's trouble or our configuration's (a 530 at MAIL FROM: the server
  wants a login it was not given), not the recipient's. A refusal of a reply is logged as a
  warning and counted (``incident_email_server_refusals_total`` by step), so a wrong
  ``[email]`` setting shows rather than failing every email for good;
- RCPT TO / DATA answered 4xx: tried again; 5xx: final (``failed``, the code kept as the
  error code): that recipient or that message. A dropped connection before DATA: tried again;
- the connection lost or timed out *during* DATA: the server may have taken the message,
  and it keeps nothing we could ask, so the fan-out gives it up rather than send it twice
  (``outcome_unknown``: the same rule as an app push).

Accepted by the server is as far as we can know (bounces are out of scope): the fan-out
records such an email as ``delivered``. Addresses are personal data: no message or log
line made here holds one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr

import aiosmtplib

from incident.core.errors import CarrierError
from incident.core.metrics import Metrics
from incident.settings import EmailSettings

log = logging.getLogger(__name__)

__all__ = ["EmailSender", "build_message", "header_text", "message_id"]

_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_NOT_IN_HEADER = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")


def message_id(delivery_id: str, from_address: str) -> str:
    """The Message-ID of a delivery's email: the same for every try of it (a receiving
    server that saw one try can tell the next one is the same message)."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "incident.invalid"
    return f"<{_NOT_ATEXT.sub('.', delivery_id)}@{domain}>"


def header_text(text: str) -> str:
    """``text`` fit for a header: every control character and line or paragraph separator
    (``\\r``, ``\\v``, ``\\f``, NEL, U+2028 ...: the email library refuses a header holding
    one) a space, and runs of white space one space."""
    return " ".join(_NOT_IN_HEADER.sub(" ", text).split())


def build_message(
    *, from_address: str, to: str, subject: str, body: str, language: str, msgid: str, at: datetime
) -> EmailMessage:
    """A plain-text email in UTF-8 (subject encoded as the standard says when not ASCII);
    the subject and language on one line (:func:`header_text`)."""
    message = EmailMessage(policy=SMTP_POLICY)
    message.set_content(body, charset="utf-8")  # first: it replaces every Content-* header
    message["From"] = from_address
    message["To"] = Address(addr_spec=to)
    message["Subject"] = header_text(subject)
    message["Date"] = format_datetime(at)
    message["Message-ID"] = msgid
    message["Content-Language"] = header_text(language)
    # Marks it as sent by a machine: no out-of-office replies to the utility's sender.
    message["Auto-Submitted"] = "auto-generated"
    return message


def _code(err: aiosmtplib.SMTPException) -> int | None:
    code = getattr(err, "code", None)
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused) and err.recipients:
        code = err.recipients[0].code
    return code if isinstance(code, int) and code > 0 else None


def _refused(step: str, err: aiosmtplib.SMTPException) -> CarrierError:
    """RCPT / DATA answered with an error: 4xx again later, 5xx final."""
    code = _code(err)
    transient = code is None or 400 <= code < 500
    what = "temporarily " if transient else ""
    return CarrierError(
        f"SMTP server {what}refused {step}: {code or 'no code'}", retryable=transient, carrier_code=code
    )


class EmailSender:
    """Sends one email at a time per call; at most ``settings.connections`` at once."""

    def __init__(self, settings: EmailSettings, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._envelope_from = parseaddr(settings.from_address)[1]
        self._slots = asyncio.Semaphore(settings.connections)

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.user or None,
            password=s.password or None,
            timeout=s.timeout,
            use_tls=s.tls == "tls",
            start_tls=s.tls == "starttls",
        )

    async def send(
        self, to: str, subject: str, body: str, *, language: str, delivery_id: str, at: datetime
    ) -> str:
        """Hand one email to the server; its Message-ID once the server took it."""
        msgid = message_id(delivery_id, self._settings.from_address)
        try:
            message = build_message(
                from_address=self._settings.from_address, to=to, subject=subject, body=body,
                language=language, msgid=msgid, at=at,
            )  # fmt: skip
            data = message.as_bytes()
        except (ValueError, TypeError, LookupError, MessageError) as err:
            # The same message would fail the same way every time: final, nothing was sent.
            # (Only the error's type: its text may quote the address.)
            raise CarrierError(f"email not built ({type(err).__name__})", retryable=False) from err
        async with self._slots:
            client = self._client()
            try:
                await client.connect()
            except aiosmtplib.SMTPException as err:
                # Nothing went out: the server's trouble (busy, TLS, login), not the message's.
                code = _code(err)
                if isinstance(err, aiosmtplib.SMTPResponseException):
                    self._server_refused("greeting, STARTTLS or login", code, step="connect")
                raise CarrierError(
                    f"SMTP server not ready ({type(err).__name__}{f' {code}' if code else ''})",
                    retryable=True,
                    carrier_code=code,
                ) from err
            except OSError as err:
                raise CarrierError(f"SMTP server not reached ({type(err).__name__})", retryable=True) from err
            try:
                await self._envelope(client, to)
                try:
                    await client.data(data)
                except aiosmtplib.SMTPResponseException as err:
                    raise _refused("the message", err) from err
                except (aiosmtplib.SMTPException, OSError) as err:
                    raise CarrierError(
                        f"SMTP connection lost while sending ({type(err).__name__}); the outcome is unknown",
                        retryable=True,
                        outcome_unknown=True,
                    ) from err
            finally:
                await self._close(client)
        return msgid

    async def _envelope(self, client: aiosmtplib.SMTP, to: str) -> None:
        try:
            await client.mail(self._envelope_from)
        except aiosmtplib.SMTPResponseException as err:
            # Refused before any recipient was named: a 5xx here is the server's or our
            # configuration's (a login it wants, a sender it does not relay for), the same for
            # every email: tried again with the backoff, and made visible.
            code = _code(err)
            self._server_refused("sender", code, step="sender")
            raise CarrierError(
                f"SMTP server refused the sender: {code or 'no code'}", retryable=True, carrier_code=code
            ) from err
        except (aiosmtplib.SMTPException, OSError) as err:
            raise CarrierError(f"SMTP connection lost ({type(err).__name__})", retryable=True) from err
        try:
            await client.rcpt(to)
        except aiosmtplib.SMTPResponseException as err:
            raise _refused("the recipient", err) from err
        except (aiosmtplib.SMTPException, OSError) as err:
            raise CarrierError(f"SMTP connection lost ({type(err).__name__})", retryable=True) from err

    def _server_refused(self, what: str, code: int | None, *, step: str) -> None:
        log.warning(
            "SMTP server refused the %s (%s): a server or [email] configuration problem; tried again",
            what,
            code or "no code",
        )
        if self._metrics is not None:
            self._metrics.email_server_refusals.labels(step=step).inc()

    @staticmethod
    async def _close(client: aiosmtplib.SMTP) -> None:
        if not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
