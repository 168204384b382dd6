"""The app factory: one ``create_app(settings)`` wires every part under typed keys.

Resources open and close in cleanup contexts, in dependency order (store before the
services that use it); background tasks are owned by the app and cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import WSCloseCode, web

from incident.adapters.smtp import EmailSender
from incident.api import areas as area_views
from incident.api import console as console_views
from incident.api import enrolments as enrolment_views
from incident.api import feeds as feed_views
from incident.api import hooks as hook_views
from incident.api import incidents as incident_views
from incident.api import notices as notice_views
from incident.api import playbooks as playbook_views
from incident.api import public as public_views
from incident.api import reports as report_views
from incident.api import signup as signup_views
from incident.api import system as system_views
from incident.api.endpoint import ALL_ROLES, Endpoint, Query, route_path
from incident.api.idempotency import idempotency_middleware
from incident.api.live import live
from incident.api.middleware import authentication, errors_and_metrics
from incident.api.webhooks import (
    HookOptions,
    add_voice_fallback,
    install_hooks,
    make_settle,
    wants_voice_fallback,
)
from incident.core.auth import TokenRegistry, read_tokens
from incident.core.clock import Clock, SystemClock
from incident.core.errors import StoreError
from incident.core.memory import release_free_memory
from incident.core.metrics import Metrics
from incident.deliveries.records import Delivery
from incident.households.enrolment import Rules
from incident.households.model import Channel
from incident.households.service_area import ServiceArea
from incident.incidents.area_worker import AreaWorker
from incident.incidents.areas import AreaLimits
from incident.incidents.live import LiveHub
from incident.incidents.service import IncidentService
from incident.intake.enrolment import EnrolmentService
from incident.intake.households import (
    AreaFiles,
    import_if_changed,
    phone_rules,
    read_area_files,
    registry_version,
)
from incident.intake.runtime import kafka_runtime
from incident.intake.triage import TriageService
from incident.keys import (
    CLOCK,
    ENDPOINTS,
    ENROLMENTS,
    FEEDS,
    HOOK_OPTIONS,
    HUB,
    INCIDENTS,
    KAFKA,
    LIVE_BRIDGE,
    LIVE_SOCKETS,
    METRICS,
    NOTICES,
    NOTIFY,
    PLAYBOOKS,
    PUBLIC,
    PUBLIC_API,
    PUBLIC_URL,
    SERVICE_AREA,
    SETTINGS,
    STORE,
    TEMPLATES,
    TOKENS,
    TRIAGE,
)
from incident.notices.language import match_language
from incident.notices.public import PublicView
from incident.notices.ratelimit import WALL, RateClock
from incident.notices.runtime import PublicUrl, credentials, notify_runtime, push_available
from incident.notices.service import NoticeService, load_notice_templates
from incident.notices.templates import NoticeTemplates
from incident.playbook import OnCall, Playbook, load_oncall, load_playbooks
from incident.playbook.engine import PlaybookEngine
from incident.reload import AreaReloader, CurrentArea, TokenReloader, build_current_area, file_stamp, poll
from incident.review.public_feeds import PublicFeeds
from incident.settings import Settings
from incident.store import Store, open_store

log = logging.getLogger(__name__)


def _prebuilt_key(settings: Settings) -> tuple[object, ...]:
    """The settings a :class:`Prebuilt` was made from: it serves only apps with the same."""
    a, n, p = settings.area, settings.notify, settings.playbooks
    return (
        a.households, a.layers, a.network, a.valves, a.crs, a.service_distance_m, a.default_region,
        n.templates, n.default_language, n.max_chars, n.max_segments, p.dir, p.oncall,
    )  # fmt: skip


@dataclass(frozen=True)
class Prebuilt:
    """What is expensive to build at start and never changes for the same files: the
    ``[area]`` files, the service area of the households file, the checked notice templates,
    the playbooks. Made once (:func:`prebuild`) and handed to many apps (the test suite)."""

    key: tuple[object, ...]
    files: AreaFiles
    #: The service area of a registry holding exactly the ``[area] households`` file.
    area: ServiceArea
    templates: NoticeTemplates
    playbooks: dict[str, Playbook]
    oncall: OnCall | None

    def fits(self, settings: Settings) -> bool:
        return self.key == _prebuilt_key(settings)


async def _read_playbooks(settings: Settings) -> tuple[dict[str, Playbook], OnCall | None]:
    p = settings.playbooks
    # A bad playbook stops start-up naming file and line: better than a stage that never runs.
    oncall = await asyncio.to_thread(load_oncall, Path(p.oncall)) if p.oncall else None
    playbooks = await asyncio.to_thread(load_playbooks, Path(p.dir), oncall=oncall) if p.dir else {}
    return playbooks, oncall


async def prebuild(settings: Settings, store: Store) -> Prebuilt:
    """Read and build what a :class:`Prebuilt` holds; ``store`` gets the households file."""
    a = settings.area
    files = await read_area_files(a)
    if a.households:
        await import_if_changed(store, Path(a.households), files.extent, phone_rules(a))
    area = await build_current_area(files, a, store)
    templates = await asyncio.to_thread(load_notice_templates, settings.notify)
    playbooks, oncall = await _read_playbooks(settings)
    return Prebuilt(_prebuilt_key(settings), files, area, templates, playbooks, oncall)


#: Set when the app was given a :class:`Prebuilt`.
PREBUILT = web.AppKey("prebuilt", Prebuilt)
#: The clock of the carrier rate limits (the wall's unless the app was given one).
RATE_CLOCK = web.AppKey("rate_clock", RateClock)

LIVE_ENDPOINT = Endpoint(
    "GET",
    "/api/live",
    live,
    "WebSocket of new timeline events (?incident= to filter); token in the header or first message",
    ALL_ROLES,
    tag="live",
    status=101,
    self_auth=True,
    query=(Query("incident", "only events of this incident (repeatable)", repeated=True),),
    errors=(400,),
    uses_store=False,
)


def all_endpoints() -> tuple[Endpoint, ...]:
    return (
        *system_views.ENDPOINTS_,
        *incident_views.ENDPOINTS,
        *area_views.ENDPOINTS,
        *notice_views.ENDPOINTS,
        *playbook_views.ENDPOINTS,
        *report_views.ENDPOINTS,
        *hook_views.ENDPOINTS,
        LIVE_ENDPOINT,
        *console_views.ENDPOINTS,
        *enrolment_views.ENDPOINTS,
        *signup_views.ENDPOINTS,
        *feed_views.ENDPOINTS,
        *public_views.ENDPOINTS,
    )


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = open_store(app[SETTINGS].store, app[CLOCK])
    await store.open()
    app[STORE] = store
    hub = LiveHub(app[METRICS], app[SETTINGS].live.client_queue)
    app[HUB] = hub
    a = app[SETTINGS].area
    areas = AreaWorker(AreaLimits(a.max_vertices, a.max_parts), a.compute_timeout_s)
    app[INCIDENTS] = IncidentService(store, hub, app[METRICS], areas)
    app[TRIAGE] = TriageService(app[INCIDENTS])
    log.info("store open (schema version %d)", await store.schema_version())
    yield
    areas.close()
    await store.close()


async def _kafka_ctx(app: web.Application) -> AsyncIterator[None]:
    async with kafka_runtime(app[SETTINGS], app[STORE], app[TRIAGE], app[METRICS]) as runtime:
        app[KAFKA] = runtime
        yield


async def _live_bridge_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    mode = settings.live.bridge
    if mode == "off" or (mode == "auto" and not settings.kafka.bootstrap_servers):
        yield
        return
    from incident.adapters.live_bridge import LiveBridge

    hub = app[HUB]
    bridge = LiveBridge(hub.deliver, app[KAFKA].bootstrap, settings.live.topic, app[METRICS])
    await bridge.start()
    hub.relay = bridge.relay
    app[LIVE_BRIDGE] = bridge
    yield
    hub.relay = None
    await bridge.close()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _area_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, store = app[SETTINGS].area, app[STORE]
    prebuilt = app.get(PREBUILT)
    files = prebuilt.files if prebuilt else await read_area_files(settings)
    imported = None
    if settings.households:
        imported = await import_if_changed(
            store, Path(settings.households), files.extent, phone_rules(settings)
        )
    version = await registry_version(store)  # before the registry is read: see AreaReloader
    # The prebuilt area is this registry's only when the registry is exactly the file just imported.
    fresh = imported is not None and imported.added == await store.count_households()
    area = prebuilt.area if prebuilt and fresh else await build_current_area(files, settings, store)
    current = CurrentArea(area, files, version)
    app[SERVICE_AREA] = current
    # Importing and indexing a million households leaves ~150 MB of freed scratch memory that
    # the C allocator keeps; hand it back, so a fan-out starts from what the service needs.
    await asyncio.to_thread(release_free_memory)
    # `incident households import` while the service runs: in the service area within seconds.
    reloader = AreaReloader(settings, store, current, app[METRICS])
    task = asyncio.create_task(
        poll(settings.reload_s, reloader.check, "households"), name="households-reload"
    )
    try:
        yield
    finally:
        await _stop(task)


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].notify
    prebuilt = app.get(PREBUILT)
    templates = prebuilt.templates if prebuilt else await asyncio.to_thread(load_notice_templates, settings)
    app[TEMPLATES] = templates

    def wake_fanout() -> None:
        # After an approval the fan-out looks at once instead of at its next tick (it runs by
        # the time anything can be approved: the app has started).
        runtime = app.get(NOTIFY)
        if runtime is not None:
            runtime.engine.wake()

    channels = frozenset(
        c
        for c in Channel
        if (c is not Channel.push or push_available(app[SETTINGS]))
        and (c is not Channel.email or app[SETTINGS].email.configured)
    )
    app[NOTICES] = NoticeService(
        app[STORE],
        app[INCIDENTS],
        templates,
        settings,
        app[CLOCK],
        channels=channels,
        on_approved=wake_fanout,
    )
    view = PublicView(app[STORE], templates, ttl_s=app[SETTINGS].public.cache_s)
    app[PUBLIC] = view
    app[INCIDENTS].listeners.append(view.changed)
    yield


async def _fanout_ctx(app: web.Application) -> AsyncIterator[None]:
    kafka = app[KAFKA]
    hub, metrics, store = app[HUB], app[METRICS], app[STORE]
    dirty: set[str] = set()
    followups: set[asyncio.Task[bool]] = set()
    options = app.get(HOOK_OPTIONS, HookOptions())

    def changed(delivery: Delivery) -> None:
        metrics.deliveries.labels(delivery.channel, delivery.state.value).inc()
        dirty.add(delivery.incident_id)
        if wants_voice_fallback(delivery, options):
            # The carrier refused the SMS at once (e.g. 21614, not a mobile): call instead.
            task = asyncio.create_task(add_voice_fallback(app, delivery, options, delivery.updated_at))
            followups.add(task)
            task.add_done_callback(followups.discard)
            task.add_done_callback(lambda _: app[NOTIFY].engine.wake())

    async def feed() -> None:
        # Progress goes to the live feed at most once a second per incident: a fan-out to
        # 100,000 households must not become 100,000 messages to every wall display.
        while True:
            await asyncio.sleep(1.0)
            for incident_id in list(dirty):
                dirty.discard(incident_id)
                try:
                    hub.publish_deliveries(incident_id, await store.delivery_counts(incident_id))
                except StoreError as err:  # the feed outlives a store hiccup; the next change retries
                    log.warning("delivery progress for %s not published: %s", incident_id, err.message)

    async with notify_runtime(
        app[SETTINGS], store, app[TEMPLATES], app[CLOCK], kafka.bootstrap,
        embedded=kafka.broker is not None, public_url=app[PUBLIC_URL], on_change=changed,
        settle=make_settle(app), rate_clock=app[RATE_CLOCK], metrics=metrics,
    ) as runtime:  # fmt: skip
        app[NOTIFY] = runtime
        metrics.notify_oldest_due.set_function(runtime.engine.oldest_due_s)
        task = asyncio.create_task(feed(), name="delivery-feed")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.gather(*followups, return_exceptions=True)


async def _feeds_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    public_url = app[PUBLIC_URL]
    feeds = PublicFeeds(
        app[STORE],
        app[TEMPLATES],
        settings.feeds,
        utility_name=settings.notify.utility_name,
        utility_url=settings.notify.utility_url,
        base_url=lambda: public_url.value,
        clock=app[CLOCK],
    )
    app[FEEDS] = feeds
    app[INCIDENTS].listeners.append(feeds.changed)
    yield


async def _playbook_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    p = settings.playbooks
    prebuilt = app.get(PREBUILT)
    playbooks, oncall = (prebuilt.playbooks, prebuilt.oncall) if prebuilt else await _read_playbooks(settings)
    runtime = app[NOTIFY]
    sender = credentials(settings).from_number

    async def page(phone: str, text: str) -> None:
        status = f"{app[PUBLIC_URL].value.rstrip('/')}/hooks/twilio/status"
        await runtime.carrier.send_sms(phone, sender, text, status)

    engine = PlaybookEngine(
        p, playbooks, app[STORE], app[INCIDENTS], app[NOTICES], lambda: app[SERVICE_AREA].value, app[CLOCK],
        buffer_m=settings.area.isolation_buffer_m, oncall=oncall, pager=page,
    )  # fmt: skip
    app[PLAYBOOKS] = engine
    log.info("%d playbooks loaded from %s", len(playbooks), p.dir)
    task = asyncio.create_task(engine.run(), name="playbook-engine") if p.enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _enrolment_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    carrier = app[NOTIFY].carrier
    sender = credentials(settings).from_number
    phones = phone_rules(settings.area)
    languages = app[TEMPLATES].languages

    async def send_sms(phone: str, text: str) -> None:
        base = (
            app[PUBLIC_URL].value or settings.twilio.public_base_url
            or f"http://{settings.http.host}:{settings.http.port}"
        )  # fmt: skip
        await carrier.send_sms(phone, sender, text, f"{base.rstrip('/')}/hooks/twilio/status")

    regions = frozenset({*settings.enrolment.allowed_regions, settings.area.default_region} - {""})

    def rules() -> Rules:
        return Rules(
            app[SERVICE_AREA].files.extent, phones, lambda tag: match_language(tag, languages) is not None,
            regions,
        )  # fmt: skip

    send_email = None
    if settings.email.configured:
        mailer = EmailSender(settings.email, app[METRICS])

        async def send_email(address: str, subject: str, text: str, language: str) -> None:
            one = f"code-{uuid.uuid4().hex}"  # the Message-ID's own part: one per code
            await mailer.send(address, subject, text, language=language, delivery_id=one, at=app[CLOCK].now())

    service = EnrolmentService(
        app[STORE], app[CLOCK], settings.enrolment, rules, utility=settings.notify.utility_name,
        send_sms=send_sms, send_email=send_email, metrics=app[METRICS],
    )  # fmt: skip
    await service.start()
    app[ENROLMENTS] = service
    yield


async def _tokens_ctx(app: web.Application) -> AsyncIterator[None]:
    auth = app[SETTINGS].auth
    path = Path(auth.tokens_file)
    stamp = await asyncio.to_thread(file_stamp, path)
    registry = TokenRegistry(await asyncio.to_thread(read_tokens, path))
    if not registry:
        log.warning("no API tokens in %s: create one with `incident tokens add NAME --role ROLE`", path)
    app[TOKENS] = registry
    # `incident tokens add` while the service runs: the token works within 2 x [auth] reload_s.
    reloader = TokenReloader(path, registry, app[METRICS], stamp)
    task = asyncio.create_task(poll(auth.reload_s, reloader.check, "tokens"), name="tokens-reload")
    try:
        yield
    finally:
        await _stop(task)


async def _close_live_sockets(app: web.Application) -> None:
    app[HUB].close_all()
    sockets = app[LIVE_SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


def _register(app: web.Application, endpoints: Iterable[Endpoint]) -> None:
    table = app[ENDPOINTS]
    for endpoint in endpoints:
        route = app.router.add_route(endpoint.method, route_path(endpoint.path), endpoint.handler)
        table[route] = endpoint


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    prebuilt: Prebuilt | None = None,
    rate_clock: RateClock = WALL,
) -> web.Application:
    """The app; ``prebuilt`` (made from the same settings) saves reading and building the
    service area, templates and playbooks again; ``rate_clock`` paces the carrier limits."""
    if prebuilt is not None and not prebuilt.fits(settings):
        raise ValueError("the prebuilt service area was made from other [area]/[notify]/[playbooks] settings")
    app = web.Application(
        middlewares=[errors_and_metrics, authentication, idempotency_middleware()],
        client_max_size=settings.http.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[RATE_CLOCK] = rate_clock
    if prebuilt is not None:
        app[PREBUILT] = prebuilt
    app[METRICS] = Metrics()
    app[ENDPOINTS] = {}
    app[PUBLIC_URL] = PublicUrl(settings.twilio.public_base_url)
    app[LIVE_SOCKETS] = set()
    p = settings.public
    app[PUBLIC_API] = public_views.PublicApi(
        public_views.ClientLimiter(p.requests_per_minute), trusted_proxies=p.trusted_proxies,
        link_writes=enrolment_views.LINK_WRITES,
    )  # fmt: skip
    app.on_response_prepare.append(public_views.security_headers)
    _register(app, all_endpoints())
    n = settings.notify
    install_hooks(app, HookOptions(n.voice_retries, n.voice_retry_minutes, n.sms_fallback_to_voice))
    contexts = [
        _tokens_ctx,
        _store_ctx,
        _area_ctx,
        _notify_ctx,
        _feeds_ctx,
        _kafka_ctx,
        _live_bridge_ctx,
        _fanout_ctx,
    ]
    app.cleanup_ctx.extend([*contexts, _playbook_ctx, _enrolment_ctx])
    app.on_shutdown.append(_close_live_sockets)
    return app
