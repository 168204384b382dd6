"""Typed keys for everything the app shares; declared once, used by views and wiring.

The services are named for the type checker only (``TYPE_CHECKING``): importing this module
loads none of them, so a view that needs a key does not pull in the whole service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from incident.adapters.live_bridge import LiveBridge
    from incident.api.endpoint import Endpoint
    from incident.api.public import PublicApi
    from incident.api.webhooks import HookMetrics, HookOptions
    from incident.core.auth import Principal, TokenRegistry
    from incident.core.clock import Clock
    from incident.core.metrics import Metrics
    from incident.incidents.live import LiveHub
    from incident.incidents.service import IncidentService
    from incident.intake.enrolment import EnrolmentService
    from incident.intake.runtime import KafkaRuntime
    from incident.intake.triage import TriageService
    from incident.notices.public import PublicView
    from incident.notices.runtime import NotifyRuntime, PublicUrl
    from incident.notices.service import NoticeService
    from incident.notices.templates import NoticeTemplates
    from incident.playbook.engine import PlaybookEngine
    from incident.reload import CurrentArea
    from incident.review.public_feeds import PublicFeeds
    from incident.settings import Settings
    from incident.store import Store


SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
STORE: web.AppKey[Store] = web.AppKey("store")
HUB: web.AppKey[LiveHub] = web.AppKey("hub")
TOKENS: web.AppKey[TokenRegistry] = web.AppKey("tokens")
INCIDENTS: web.AppKey[IncidentService] = web.AppKey("incidents")
TRIAGE: web.AppKey[TriageService] = web.AppKey("triage")
#: The service area in use (``.value``); replaced whole when households are imported.
SERVICE_AREA: web.AppKey[CurrentArea] = web.AppKey("service_area")
TEMPLATES: web.AppKey[NoticeTemplates] = web.AppKey("templates")
NOTICES: web.AppKey[NoticeService] = web.AppKey("notices")
#: What residents see of the open public incidents (the public page and feeds).
PUBLIC: web.AppKey[PublicView] = web.AppKey("public")
#: The public API's rate budget per client address and its encoded answers.
PUBLIC_API: web.AppKey[PublicApi] = web.AppKey("public_api")
NOTIFY: web.AppKey[NotifyRuntime] = web.AppKey("notify")
PUBLIC_URL: web.AppKey[PublicUrl] = web.AppKey("public_url")
KAFKA: web.AppKey[KafkaRuntime] = web.AppKey("kafka")
PLAYBOOKS: web.AppKey[PlaybookEngine] = web.AppKey("playbooks")
#: The public feeds (CAP in Atom, outages as GeoJSON), kept until a public incident changes.
FEEDS: web.AppKey[PublicFeeds] = web.AppKey("feeds")
ENDPOINTS: web.AppKey[dict[web.AbstractRoute, Endpoint]] = web.AppKey("endpoints")
LIVE_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("live_sockets")
#: The carrier webhooks' options (defaults when absent) and counters.
HOOK_OPTIONS: web.AppKey[HookOptions] = web.AppKey("hook_options")
HOOK_METRICS: web.AppKey[HookMetrics] = web.AppKey("hook_metrics")
#: Residents signing themselves up (double opt-in).
ENROLMENTS: web.AppKey[EnrolmentService] = web.AppKey("enrolments")
#: Present when the live feed is bridged between instances ([live] bridge).
LIVE_BRIDGE: web.AppKey[LiveBridge] = web.AppKey("live_bridge")

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
