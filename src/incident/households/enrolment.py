"""Self-enrolment with double opt-in, the pure part: what a sign-up may ask for, the
one-time code, and the signed link that changes or removes a self-enrolled household.

A sign-up confirms exactly one contact: a mobile number (its code comes by SMS; the same
number may also be called) or an email address. A second contact would get notices without
ever having been confirmed, so each is signed up on its own. The code is kept only as a
keyed hash (HMAC-SHA256 with the enrolment secret) and compared in constant time; contacts
and client addresses are kept for counting only as keyed hashes too.

Phone numbers and addresses are personal data: no message built here contains one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import msgspec

from incident.core.errors import InvalidInput
from incident.geo.extent import Extent
from incident.households.emails import EmailError, normalise_email
from incident.households.model import Channel, Household, HouseholdSource, Need, Priority, standard_tag
from incident.households.phones import PhoneError, PhoneRules

#: How long a code may be used, and how many guesses an enrolment takes before it dies.
CODE_TTL_S = 15 * 60
MAX_TRIES = 5
CODE_DIGITS = 6
MAX_ADDRESS = 200
MAX_EMAIL = 254


class SentTo(StrEnum):
    sms = "sms"
    email = "email"


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """The household a sign-up asks for, kept until its code is confirmed."""

    address: str
    lon: float
    lat: float
    language: str
    #: The one phone number (E.164, a mobile: sms and voice both go to it), or "".
    phone: str = ""
    email: str = ""
    #: The channels chosen, in the order they are to be tried (voice first for
    #: ``blind_or_low_vision``).
    channels: tuple[str, ...] = ()
    needs: tuple[Need, ...] = ()

    @property
    def sent_to(self) -> SentTo:
        return SentTo.sms if self.phone else SentTo.email

    @property
    def contact(self) -> str:
        """Where the code goes: the one phone number, or the email address."""
        return self.phone or self.email

    def __repr__(self) -> str:
        return f"Pending(language={self.language!r}, channels={self.channels}, needs={self.needs})"


class Choices(msgspec.Struct, frozen=True, kw_only=True):
    """What a self-enrolled household may change through its signed link."""

    language: str | None = None
    channels: tuple[str, ...] | None = None
    needs: tuple[Need, ...] | None = None


@dataclass(frozen=True)
class Rules:
    """What a sign-up is checked against: the service area's extent (None: not known, every
    position in range is taken), how phone numbers are read, which languages notices exist in,
    and the regions (ISO 3166) whose mobile numbers may sign up (none: no phone sign-ups)."""

    extent: Extent | None
    phones: PhoneRules
    supports_language: Callable[[str], bool]
    regions: frozenset[str] = frozenset()


def _odd(text: str) -> bool:
    """Whether ``text`` holds a control, format or surrogate character (NUL, bidi overrides,
    ...): never part of an address, and some (NUL) no database stores."""
    return any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text)


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_enrolment")


def _language(tag: str, rules: Rules) -> str:
    standard = standard_tag(tag.strip()) if len(tag) <= 35 else None
    if standard is None:
        raise _bad("language: not a BCP 47 language tag (e.g. en, zh-CN)")
    if not rules.supports_language(standard):
        raise _bad(f"language: notices are not written in {standard!r}")
    return standard


def _mobile(value: str, rules: Rules, what: str) -> str:
    if len(value) > 40:
        raise _bad(f"{what}: not a phone number")
    if not rules.regions:
        raise _bad(
            f"{what}: sign-up by phone is not offered here (no [area] default_region); give an email address"
        )
    try:
        return rules.phones.mobile(value.strip(), rules.regions)
    except PhoneError as err:
        raise _bad(f"{what}: the number {err}") from None


def normal_email(value: str) -> str:
    """The address in its one spelling (the households file's rule), or :class:`InvalidInput`."""
    if _odd(value.strip()):
        raise _bad("email: the address has control or format characters")
    try:
        return normalise_email(value)
    except EmailError as err:
        raise _bad(f"email: the address {err}") from None


#: The channels a sign-up may choose (push is signed up in the app) and what each needs.
CHANNELS: dict[str, str] = {"sms": "sms number", "voice": "voice number", "email": "email address"}


def _channels(channels: tuple[str, ...], needs: tuple[Need, ...], have: dict[str, bool]) -> tuple[str, ...]:
    if not channels:
        raise _bad("channels: choose at least one")
    if len(set(channels)) != len(channels):
        raise _bad("channels: a channel is given twice")
    for channel in channels:
        if channel not in CHANNELS:
            raise _bad(f"channels: one of {', '.join(CHANNELS)}")
        if not have[channel]:
            raise _bad(f"channels: {channel} is chosen but no {CHANNELS[channel]} is given")
    if Need.deaf_or_hard_of_hearing in needs and "voice" in channels:
        raise _bad("channels: voice calls are not made to a household that is deaf or hard of hearing")
    ordered = list(channels)
    if Need.blind_or_low_vision in needs and "voice" in ordered:
        ordered.remove("voice")
        ordered.insert(0, "voice")
    return tuple(ordered)


def validate(
    *,
    address: str,
    lon: float,
    lat: float,
    language: str,
    sms: str | None,
    voice: str | None,
    email: str | None,
    channels: tuple[str, ...],
    needs: tuple[Need, ...],
    rules: Rules,
) -> Pending:
    """The sign-up as a :class:`Pending` household, or :class:`InvalidInput` saying what is
    wrong (never echoing a number or an address)."""
    address = " ".join(address.split())
    if _odd(address):
        raise _bad("address: control or format characters are not allowed; write the street address")
    if not address:
        raise _bad("address: give the street address")
    if len(address) > MAX_ADDRESS:
        raise _bad(f"address: at most {MAX_ADDRESS} characters")
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise _bad("lon/lat: not a position (lon -180..180, lat -90..90)")
    if rules.extent is not None and not rules.extent.intersects_box(lon, lat, lon, lat):
        raise _bad("lon/lat: the position is outside the service area")
    tag = _language(language, rules)
    if len(set(needs)) != len(needs):
        raise _bad("needs: a need is given twice")
    sms_n = _mobile(sms, rules, "sms") if sms and sms.strip() else ""
    voice_n = _mobile(voice, rules, "voice") if voice and voice.strip() else ""
    mail = normal_email(email) if email and email.strip() else ""
    phone = sms_n or voice_n
    if sms_n and voice_n and sms_n != voice_n:
        raise _bad(
            "sms/voice: give one phone number (the code is sent to it); sign up another one separately"
        )
    if phone and mail:
        raise _bad("email: sign up a phone number and an email address separately (each gets its own code)")
    if not phone and not mail:
        raise _bad("give a mobile number or an email address: the code is sent there")
    if phone and PhoneRules.is_fixed_line(phone):
        raise _bad("sms/voice: the number is a fixed line and cannot receive the code by SMS; give a mobile")
    chosen = _channels(channels, needs, {"sms": bool(phone), "voice": bool(phone), "email": bool(mail)})
    return Pending(
        address=address, lon=lon, lat=lat, language=tag,
        phone=phone, email=mail, channels=chosen, needs=tuple(sorted(set(needs))),
    )  # fmt: skip


def household(pending: Pending, account_id: str) -> Household:
    """The household a confirmed sign-up becomes (source ``self``). The confirmed number is
    both its sms and its voice number; the channels not chosen are opted out, so that a
    change of channels through the signed link needs no new number."""
    medical = Need.medical_equipment in pending.needs
    phone_channels = {Channel.sms, Channel.voice} if pending.phone else set()
    return Household(
        account_id=account_id, lon=pending.lon, lat=pending.lat, address=pending.address,
        language=pending.language, sms=pending.phone, voice=pending.phone, app_token="",
        priority=Priority.medical if medical else None,
        opt_out=frozenset(c for c in phone_channels if c.value not in pending.channels),
        email=pending.email, source=HouseholdSource.self_enrolled, needs=frozenset(pending.needs),
        # A medical priority told by a resident waits for the utility's confirmation.
        priority_confirmed=not medical,
    )  # fmt: skip


def changed(pending: Pending, choices: Choices, rules: Rules) -> Pending:
    """``pending`` with the choices made through the signed link, checked as a sign-up is."""
    return validate(
        address=pending.address, lon=pending.lon, lat=pending.lat,
        language=choices.language if choices.language is not None else pending.language,
        sms=pending.phone, voice=None, email=pending.email,
        channels=choices.channels if choices.channels is not None else pending.channels,
        needs=choices.needs if choices.needs is not None else pending.needs,
        rules=rules,
    )  # fmt: skip


def new_account_id() -> str:
    return "self-" + secrets.token_hex(8)


def new_enrolment_id() -> str:
    return "enr-" + secrets.token_urlsafe(16)


_ENROLMENT_ID = re.compile(r"enr-[A-Za-z0-9_-]{1,40}")


def is_enrolment_id(text: str) -> bool:
    """Whether ``text`` could be a sign-up's id (anything else is not looked up)."""
    return _ENROLMENT_ID.fullmatch(text) is not None


# --- codes and keyed hashes ---------------------------------------------------------------


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _mac(secret: bytes, purpose: str, *parts: str) -> str:
    message = "\x1f".join((purpose, *parts)).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def code_digest(secret: bytes, enrolment_id: str, code: str) -> str:
    """The code as kept: keyed, and bound to its enrolment (a digest cannot be moved)."""
    return _mac(secret, "code", enrolment_id, code)


def code_matches(secret: bytes, enrolment_id: str, code: str, digest: str) -> bool:
    """Constant time: how long the compare takes tells nothing about the code."""
    given = code_digest(secret, enrolment_id, code.strip())
    return hmac.compare_digest(given.encode(), digest.encode())


def contact_key(secret: bytes, contact: str) -> str:
    """A phone number or email address as counted for rate limits (never the plain value)."""
    return _mac(secret, "contact", contact.lower())


def client_key(secret: bytes, remote: str) -> str:
    """A client address as counted for rate limits: IPv4 whole, IPv6 by its /64 (one
    household's network), keyed so that the store holds no address."""
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return _mac(secret, "client", "unknown")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bucket = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    return _mac(secret, "client", bucket)


# --- the signed link ----------------------------------------------------------------------


class BadLink(InvalidInput):
    code = "invalid_link"
    status = 403


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(secret: bytes, account_id: str, enrolment_id: str, expires: int) -> str:
    """A token naming the household, the confirmed sign-up that made it (a newer sign-up of
    the same contact ends the link) and when it stops working (Unix seconds), signed."""
    body = _b64(f"{account_id}.{enrolment_id}.{expires}".encode())
    return f"{body}.{_mac(secret, 'manage', body)[:43]}"


_TOKEN = re.compile(r"^[A-Za-z0-9_-]{4,200}\.[0-9a-f]{43}$")


def read_link(secret: bytes, token: str, now: float) -> tuple[str, str]:
    """The account id and sign-up id of a valid, unexpired token, else :class:`BadLink` (one
    message for a forged or a broken token: which one it was is not told)."""
    if not _TOKEN.match(token):
        raise BadLink("this link is not valid")
    body, mac = token.split(".")
    if not hmac.compare_digest(_mac(secret, "manage", body)[:43].encode(), mac.encode()):
        raise BadLink("this link is not valid")
    try:
        account_id, enrolment_id, expires = _unb64(body).decode().split(".")
        until = int(expires)
    except (ValueError, UnicodeDecodeError):
        raise BadLink("this link is not valid") from None
    if until < now:
        raise BadLink("this link has expired: sign up again to get a new one", code="link_expired")
    return account_id, enrolment_id


def pending_of(h: Household) -> Pending:
    """A self-enrolled household as the sign-up it came from (for its signed link)."""
    channels = [c.value for c in h.channels() if c is not Channel.push]
    if Need.blind_or_low_vision in h.needs and "voice" in channels:
        channels.remove("voice")
        channels.insert(0, "voice")
    return Pending(
        address=h.address, lon=h.lon, lat=h.lat, language=h.language, phone=h.sms or h.voice, email=h.email,
        channels=tuple(channels), needs=tuple(sorted(h.needs)),
    )  # fmt: skip
