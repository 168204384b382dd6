"""Residents sign themselves up (no token: every input is hostile).

``POST /public/api/enrolments`` checks the sign-up and sends a one-time code;
``POST /public/api/enrolments/{enrolment_id}/confirm`` puts the household in the registry
and answers the signed link through which ``/public/api/households/self/{token}`` reads,
changes or removes it. Answers are the same whether or not a number is known.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from incident.api.endpoint import Endpoint, json_response, read_body
from incident.api.public import client_address, spend
from incident.core.errors import NotFound, RateLimited
from incident.households.enrolment import Choices, Pending, SentTo, validate
from incident.households.model import Need
from incident.keys import ENROLMENTS, PUBLIC_API, SETTINGS

#: A sign-up is a few hundred bytes; nothing bigger is read on a public route.
BODY_LIMIT = 4096
#: Changes and removals through one signed link per minute (from any client); more: 429.
LINK_WRITES = 10

ChannelName = Literal["sms", "voice", "email"]
Channels = Annotated[list[ChannelName], msgspec.Meta(min_length=1, max_length=3)]
Needs = Annotated[list[Need], msgspec.Meta(max_length=3)]
Language = Annotated[str, msgspec.Meta(min_length=1, max_length=35)]
Phone = Annotated[str, msgspec.Meta(max_length=40)]
Coordinate = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]


class EnrolmentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: The street address as the resident writes it.
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    lon: Coordinate
    lat: Latitude
    #: BCP 47 tag of a language notices are written in (e.g. en, zh-CN).
    language: Language
    #: One mobile number (E.164, or national in [area] default_region): the code goes to it
    #: by SMS. ``voice``, if also given, must be the same number.
    sms: Phone | None = None
    voice: Phone | None = None
    #: Or an email address (not together with a phone number: each is confirmed on its own).
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    channels: Channels
    needs: Needs = msgspec.field(default_factory=list)


class EnrolmentStarted(msgspec.Struct, frozen=True):
    enrolment_id: str
    #: Where the code went.
    sent_to: SentTo
    expires_at: datetime


class ConfirmBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=12)]


class EnrolmentConfirmed(msgspec.Struct, frozen=True):
    household_id: str
    #: The signed token of ``/public/api/households/self/{token}``; keep it: it is the only
    #: way to change or remove the sign-up.
    manage_token: str
    #: The sign-up page that opens with this token.
    manage_url: str
    link_expires_at: datetime


class SelfHousehold(msgspec.Struct, frozen=True):
    household_id: str
    address: str
    lon: float
    lat: float
    language: str
    channels: list[str]
    needs: list[Need]
    #: The confirmed contact, mostly hidden (e.g. +1•••••••23).
    contact: str


class ChangeBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    language: Language | None = None
    channels: Channels | None = None
    needs: Needs | None = None


def _enabled(request: web.Request) -> None:
    """Sign-up is offered here, and the client is within its /public budget."""
    if not request.app[SETTINGS].enrolment.enabled:
        raise NotFound("sign-up is not offered here")
    spend(request)


def _spend_link(request: web.Request) -> None:
    """A change or removal counts against the link too, whichever client sends it (keyed by
    the token's signature: a token is the only thing that names its household here)."""
    wait = request.app[PUBLIC_API].links.wait_s(request.match_info["token"][-43:])
    if wait:
        seconds = math.ceil(wait)
        raise RateLimited(
            f"too many changes through this link: try again in {seconds} s", retry_after=seconds
        )


def _client(request: web.Request) -> str:
    """Who is asking, by the same rule as the rest of /public (``[public] trusted_proxies``)."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return client_address(request.remote, forwarded, request.app[PUBLIC_API].trusted)


def _masked(contact: str) -> str:
    if "@" in contact:
        local, _, domain = contact.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    return contact[:2] + "•" * max(len(contact) - 4, 0) + contact[-2:]


def _view(account_id: str, pending: Pending) -> SelfHousehold:
    return SelfHousehold(
        account_id, pending.address, pending.lon, pending.lat, pending.language, list(pending.channels),
        list(pending.needs), _masked(pending.contact),
    )  # fmt: skip


async def enrol(request: web.Request) -> web.Response:
    _enabled(request)
    body = await read_body(request, EnrolmentBody, limit=BODY_LIMIT)
    service = request.app[ENROLMENTS]
    pending = validate(
        address=body.address, lon=body.lon, lat=body.lat, language=body.language, sms=body.sms,
        voice=body.voice, email=body.email, channels=tuple(body.channels), needs=tuple(body.needs),
        rules=service.rules,
    )  # fmt: skip
    started = await service.enrol(pending, _client(request))
    expires = datetime.fromisoformat(started.expires_at)
    return json_response(EnrolmentStarted(started.enrolment_id, started.sent_to, expires), 202)


async def confirm(request: web.Request) -> web.Response:
    _enabled(request)
    body = await read_body(request, ConfirmBody, limit=BODY_LIMIT)
    done = await request.app[ENROLMENTS].confirm(request.match_info["enrolment_id"], body.code)
    url = f"/public/signup#manage={done.token}"
    return json_response(
        EnrolmentConfirmed(done.account_id, done.token, url, datetime.fromisoformat(done.link_expires_at))
    )


async def read_self(request: web.Request) -> web.Response:
    _enabled(request)
    account_id, pending = await request.app[ENROLMENTS].read(request.match_info["token"])
    return json_response(_view(account_id, pending))


async def change_self(request: web.Request) -> web.Response:
    _enabled(request)
    _spend_link(request)
    body = await read_body(request, ChangeBody, limit=BODY_LIMIT)
    choices = Choices(
        language=body.language,
        channels=tuple(body.channels) if body.channels is not None else None,
        needs=tuple(body.needs) if body.needs is not None else None,
    )
    account_id, pending = await request.app[ENROLMENTS].change(request.match_info["token"], choices)
    return json_response(_view(account_id, pending))


async def remove_self(request: web.Request) -> web.Response:
    _enabled(request)
    _spend_link(request)
    await request.app[ENROLMENTS].remove(request.match_info["token"])
    return web.Response(status=204)


_SELF = "/public/api/households/self/{token}"
#: 410: expired, used up or removed; 429: a rate limit (Retry-After says when to try again).
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/public/api/enrolments", enrol,
             "Sign up a household (no token): a one-time code goes to the phone (SMS) or email given",
             None, tag="public", body=EnrolmentBody, response=EnrolmentStarted, status=202,
             errors=(404, 429)),
    Endpoint("POST", "/public/api/enrolments/{enrolment_id}/confirm", confirm,
             "Confirm a sign-up with its code (15 minutes, 5 tries): the household is in the registry",
             None, tag="public", body=ConfirmBody, response=EnrolmentConfirmed, errors=(410, 429)),
    Endpoint("GET", _SELF, read_self, "A self-enrolled household, through its signed link", None,
             tag="public", response=SelfHousehold, errors=(403, 410, 429)),
    Endpoint("PATCH", _SELF, change_self,
             "Change a self-enrolled household's language, channels or needs, through its signed link",
             None, tag="public", body=ChangeBody, response=SelfHousehold, errors=(403, 410, 429)),
    Endpoint("DELETE", _SELF, remove_self, "Remove a self-enrolled household, through its signed link",
             None, tag="public", status=204, errors=(403, 410, 429)),
)  # fmt: skip
