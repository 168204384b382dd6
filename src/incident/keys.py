"""Typed keys for everything the app shares; declared once, used by views and wiring."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from incident.auth import Principal, TokenRegistry
from incident.clock import Clock
from incident.incidents import IncidentService
from incident.kafka_runtime import KafkaRuntime
from incident.live import LiveHub
from incident.metrics import Metrics
from incident.notices import NoticeService
from incident.notify.runtime import NotifyRuntime, PublicUrl
from incident.notify.templates import NoticeTemplates
from incident.playbook.engine import PlaybookEngine
from incident.reload import CurrentArea
from incident.settings import Settings
from incident.store import Store
from incident.triage import TriageService

if TYPE_CHECKING:
    from incident.api.endpoint import Endpoint
    from incident.live_bridge import LiveBridge


SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", Store)
HUB = web.AppKey("hub", LiveHub)
TOKENS = web.AppKey("tokens", TokenRegistry)
INCIDENTS = web.AppKey("incidents", IncidentService)
TRIAGE = web.AppKey("triage", TriageService)
#: The service area in use (``.value``); replaced whole when households are imported.
SERVICE_AREA = web.AppKey("service_area", CurrentArea)
TEMPLATES = web.AppKey("templates", NoticeTemplates)
NOTICES = web.AppKey("notices", NoticeService)
NOTIFY = web.AppKey("notify", NotifyRuntime)
PUBLIC_URL = web.AppKey("public_url", PublicUrl)
KAFKA = web.AppKey("kafka", KafkaRuntime)
PLAYBOOKS = web.AppKey("playbooks", PlaybookEngine)
ENDPOINTS: web.AppKey[dict[web.AbstractRoute, Endpoint]] = web.AppKey("endpoints")
LIVE_SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("live_sockets")
#: Present when the live feed is bridged between instances ([live] bridge).
LIVE_BRIDGE: web.AppKey[LiveBridge] = web.AppKey("live_bridge")

PRINCIPAL = web.RequestKey("principal", Principal)
