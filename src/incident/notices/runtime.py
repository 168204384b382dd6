"""What the app holds of the fan-out while it runs: the carrier (Twilio, or the drill
carrier started here), the engine and its tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from incident.adapters.carriers import PushGateway, TwilioCarrier
from incident.adapters.smtp import EmailSender
from incident.core.clock import Clock
from incident.core.errors import ConfigError
from incident.core.metrics import Metrics
from incident.deliveries.records import Delivery
from incident.notices.fanout import NotifyEngine, Settle
from incident.notices.ratelimit import WALL, RateClock
from incident.notices.templates import NoticeTemplates
from incident.settings import Settings
from incident.store import Store

if TYPE_CHECKING:
    # The simulator is loaded only in drill mode (below, when the carrier is the drill one).
    from incident.carriersim.server import DrillServer

log = logging.getLogger(__name__)


#: The sender number of drills when none is configured (a number of the fiction range).
DRILL_FROM = "+15005550006"


def push_available(settings: Settings) -> bool:
    """Whether app push can be sent: a gateway is configured, or the drill carrier answers it."""
    return bool(settings.push.url) or settings.carrier.mode == "drill"


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str
    from_number: str


def credentials(settings: Settings) -> Credentials:
    """The Twilio account in use; the drill carrier has its own defaults. Real Twilio needs
    all three: a missing one stops start-up rather than failing every delivery later."""
    t = settings.twilio
    if settings.carrier.mode == "drill":
        from incident.carriersim.config import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

        return Credentials(
            t.account_sid or DEFAULT_ACCOUNT_SID,
            t.auth_token or DEFAULT_AUTH_TOKEN,
            t.from_number or DRILL_FROM,
        )
    missing = [k for k in ("account_sid", "auth_token", "from_number") if not getattr(t, k)]
    if missing:
        raise ConfigError(f"[carrier] mode = twilio needs [twilio] {', '.join(missing)}")
    return Credentials(t.account_sid, t.auth_token, t.from_number)


@dataclass
class PublicUrl:
    """Where the carrier reaches our webhooks: ``[twilio] public_base_url``, or our own
    address once the server listens (set by whoever starts it)."""

    value: str = ""


@dataclass
class NotifyRuntime:
    engine: NotifyEngine
    carrier: TwilioCarrier
    drill: DrillServer | None
    push: bool
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def notify_runtime(
    settings: Settings,
    store: Store,
    templates: NoticeTemplates,
    clock: Clock,
    bootstrap: str,
    *,
    embedded: bool,
    public_url: PublicUrl,
    on_change: Callable[[Delivery], None] | None = None,
    settle: Settle | None = None,
    rate_clock: RateClock = WALL,
    metrics: Metrics | None = None,
) -> AsyncIterator[NotifyRuntime]:
    creds = credentials(settings)
    async with contextlib.AsyncExitStack() as stack:
        drill: DrillServer | None = None
        base_url = settings.twilio.api_base_url
        if settings.carrier.mode == "drill":
            from incident.carriersim.config import DrillConfig
            from incident.carriersim.server import serve_drill

            drill = await stack.enter_async_context(
                serve_drill(DrillConfig(account_sid=creds.account_sid, auth_token=creds.auth_token))
            )
            base_url = drill.url
            log.info(
                "drill carrier (Twilio-compatible simulator) on %s: no SMS or call leaves this machine",
                drill.url,
            )
            if settings.email.configured:
                log.warning("[email] host is set: emails go to that SMTP server in drill mode too")
        carrier = TwilioCarrier(creds.account_sid, creds.auth_token, base_url)
        stack.push_async_callback(carrier.close)
        push: PushGateway | None = None
        push_url, push_token = settings.push.url, settings.push.token
        if drill is not None and not push_url:
            push_url, push_token = f"{drill.url}/v1/projects/drill/messages:send", creds.auth_token
        if push_url:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            push = PushGateway(push_url, push_token, session)
        engine = NotifyEngine(
            settings, store, templates, carrier, clock, bootstrap,
            embedded=embedded, from_number=creds.from_number, push=push,
            email=EmailSender(settings.email, metrics) if settings.email.configured else None,
            public_url=lambda: public_url.value or settings.twilio.public_base_url
            or f"http://{settings.http.host}:{settings.http.port}",
            on_change=on_change, settle=settle, rate_clock=rate_clock,
        )  # fmt: skip
        runtime = NotifyRuntime(engine, carrier, drill, push is not None)
        if settings.notify.send:
            await engine.start()
            stack.push_async_callback(engine.stop)
            runtime.tasks = [
                asyncio.create_task(engine.run_dispatcher(), name="notify-dispatcher"),
                asyncio.create_task(engine.run_worker(), name="notify-worker"),
                asyncio.create_task(engine.run_reconciler(), name="notify-reconciler"),
                asyncio.create_task(engine.run_housekeeping(), name="notify-housekeeping"),
                asyncio.create_task(engine.run_finality(), name="notify-finality"),
            ]
        try:
            yield runtime
        finally:
            for task in runtime.tasks:
                task.cancel()
            for task in runtime.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
