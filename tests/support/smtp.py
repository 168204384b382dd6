"""A real SMTP server on loopback for the email channel's tests (``aiosmtpd``, in the test's
event loop): it records every message it accepts, and can be told to answer the next
recipients or messages with an error (``fail_next``) or to take its time (``delay_s``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    """One message the server took: envelope and the parsed message."""

    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def to(self) -> str:
        return self.recipients[0]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n").strip()


@dataclass
class SmtpRecorder:
    """The server's handler: what it took, and the answers it is told to give."""

    received: list[Received] = field(default_factory=list)
    #: Seconds to wait before answering DATA.
    delay_s: float = 0.0
    #: Times DATA was answered at all (accepted or refused).
    data_calls: int = 0
    #: Drop the connection instead of answering the next this many DATA commands.
    drop_in_data: int = 0
    _fail: dict[str, deque[str]] = field(
        default_factory=lambda: {"MAIL": deque(), "RCPT": deque(), "DATA": deque()}
    )

    def fail_next(self, reply: str, *, count: int = 1, at: Literal["MAIL", "RCPT", "DATA"] = "DATA") -> None:
        """Answer the next ``count`` MAIL FROM, RCPT TO or DATA commands with ``reply``
        ("451 4.3.0 busy"; at MAIL, "530 5.7.0 Authentication required" is a server that
        wants a login it was not given)."""
        self._fail[at].extend([reply] * count)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._fail["MAIL"]:
            return self._fail["MAIL"].popleft()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._fail["RCPT"]:
            return self._fail["RCPT"].popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.drop_in_data:
            self.drop_in_data -= 1
            assert server.transport is not None
            server.transport.abort()  # the message arrived; its answer never does
            return "250 OK (never seen)"
        if self._fail["DATA"]:
            return self._fail["DATA"].popleft()
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), message))
        return "250 OK queued"


@dataclass
class SmtpServer:
    recorder: SmtpRecorder
    host: str
    port: int

    def env(self, **more: str) -> dict[str, str]:
        """The app's settings for this server (plain SMTP on loopback)."""
        return {
            "INCIDENT_EMAIL__HOST": self.host,
            "INCIDENT_EMAIL__PORT": str(self.port),
            "INCIDENT_EMAIL__TLS": "none",
            "INCIDENT_EMAIL__FROM_ADDRESS": "Sampletown Water <alerts@sampletown.example>",
            "INCIDENT_EMAIL__TIMEOUT": "5",
            **more,
        }


@contextlib.asynccontextmanager
async def smtp_server() -> AsyncIterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 (a free port) for the duration of the block."""
    recorder = SmtpRecorder()
    loop = asyncio.get_running_loop()

    def protocol() -> Any:
        return SMTP(recorder, hostname="smtp.test", loop=loop)

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield SmtpServer(recorder, "127.0.0.1", port)
    finally:
        server.close()
        await server.wait_closed()
