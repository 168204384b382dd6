"""The pure rules of self-enrolment: what a sign-up may ask for, codes, keyed hashes, signed
links; and the sign-up page has words in both languages for every key it uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from incident.core.errors import InvalidInput
from incident.geo.extent import Extent
from incident.households import enrolment as e
from incident.households.model import Channel, HouseholdSource, Need, Priority
from incident.households.phones import PhoneRules

SECRET = b"k" * 32
RULES = e.Rules(
    Extent.around(np.array([-85.6, -85.5]), np.array([38.0, 38.1])),
    PhoneRules("US"),
    lambda tag: tag in {"en", "zh-CN"},
    frozenset({"US", "CN"}),
)
BASE: dict[str, Any] = {
    "address": "  12   Elm St ", "lon": -85.55, "lat": 38.05, "language": "zh-cn", "sms": "(502) 555-0177",
    "voice": None, "email": None, "channels": ("sms",), "needs": (),
}  # fmt: skip


def signed_up(**changes: Any) -> e.Pending:
    return e.validate(**{**BASE, **changes}, rules=RULES)


def test_a_sign_up_is_read_into_one_spelling() -> None:
    p = signed_up()
    assert (p.address, p.language, p.phone, p.sent_to, p.contact) == (
        "12 Elm St", "zh-CN", "+15025550177", e.SentTo.sms, "+15025550177",
    )  # fmt: skip
    assert "+1502" not in repr(p)
    mail = signed_up(sms=None, email="Someone@Example.ORG", channels=("email",))
    assert (mail.email, mail.sent_to, mail.phone) == ("Someone@example.org", e.SentTo.email, "")


def test_needs_shape_the_channels_and_the_household() -> None:
    blind = signed_up(channels=("sms", "voice"), needs=(Need.blind_or_low_vision,))
    assert blind.channels == ("voice", "sms")
    with pytest.raises(InvalidInput, match="deaf"):
        signed_up(channels=("voice",), needs=(Need.deaf_or_hard_of_hearing,))
    medical = signed_up(needs=(Need.medical_equipment,))
    home = e.household(medical, "self-1")
    assert home.priority is Priority.medical and not home.priority_confirmed
    assert home.source is HouseholdSource.self_enrolled and home.needs == frozenset({Need.medical_equipment})
    # The number is kept for both phone channels; the one not chosen is opted out.
    assert (home.sms, home.voice, home.opt_out) == (
        "+15025550177",
        "+15025550177",
        frozenset({Channel.voice}),
    )
    assert e.pending_of(home) == medical
    assert e.pending_of(e.household(blind, "self-2")) == blind


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"lon": -80.0}, "outside the service area"),
        ({"language": "es"}, "not written in"),
        ({"language": "x" * 40}, "BCP 47"),
        ({"sms": "555"}, "not a valid number"),
        ({"sms": None}, "give a mobile number or an email"),
        ({"email": "a@b.example"}, "separately"),
        ({"email": "not an address", "sms": None, "channels": ("email",)}, "email"),
        ({"voice": "+15025550100", "channels": ("sms", "voice")}, "one phone number"),
        ({"channels": ("sms", "sms")}, "twice"),
        ({"channels": ("push",)}, "one of"),
        ({"channels": ("email",)}, "no email address"),
        ({"address": ""}, "address"),
    ],
)
def test_a_sign_up_breaking_a_rule_says_which_and_never_the_number(
    changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidInput, match=says) as err:
        signed_up(**changes)
    assert "0177" not in err.value.message


def test_a_fixed_line_cannot_get_the_code() -> None:
    # A Chinese fixed line (Beijing): an SMS to it never arrives.
    with pytest.raises(InvalidInput, match="fixed line"):
        signed_up(sms="+861012345678")


@pytest.mark.parametrize(
    ("number", "says"),
    [
        ("+447911123456", "not in this service's region"),  # a British mobile: US and CN only
        ("+15551234567", "not a valid number"),  # the right shape, but no such number
        ("+18005550199", "not a mobile"),  # toll-free: nobody's phone
        ("+881612345678", "not in this service's region"),  # a satellite network, no region
    ],
)
def test_only_valid_mobiles_of_the_service_regions_get_a_code(number: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as err:
        signed_up(sms=number)
    assert number[3:] not in err.value.message
    assert signed_up(sms="+8613800138000").phone == "+8613800138000"  # a Chinese mobile: CN is allowed


def test_without_a_region_no_number_gets_a_code() -> None:
    rules = e.Rules(RULES.extent, PhoneRules(), RULES.supports_language)
    with pytest.raises(InvalidInput, match="default_region"):
        e.validate(**{**BASE, "sms": "+15025550177"}, rules=rules)
    assert e.validate(**{**BASE, "sms": None, "email": "a@b.example", "channels": ("email",)}, rules=rules)


def test_codes_are_kept_keyed_and_bound_to_their_sign_up() -> None:
    codes = {e.new_code() for _ in range(200)}
    assert all(re.fullmatch(r"\d{6}", c) for c in codes) and len(codes) > 150
    digest = e.code_digest(SECRET, "enr-1", "123456")
    assert "123456" not in digest
    assert e.code_matches(SECRET, "enr-1", " 123456 ", digest)
    assert not e.code_matches(SECRET, "enr-2", "123456", digest)  # another sign-up's digest
    assert not e.code_matches(b"other" * 8, "enr-1", "123456", digest)
    assert not e.code_matches(SECRET, "enr-1", "123457", digest)


def test_clients_are_counted_by_address_and_ipv6_by_its_64() -> None:
    key = e.client_key
    assert key(SECRET, "2001:db8:0:1::1") == key(SECRET, "2001:db8:0:1:ffff::9")
    assert key(SECRET, "2001:db8:0:1::1") != key(SECRET, "2001:db8:0:2::1")
    assert key(SECRET, "::ffff:203.0.113.7") == key(SECRET, "203.0.113.7") != key(SECRET, "203.0.113.8")
    assert "203.0.113" not in key(SECRET, "203.0.113.7")
    assert e.contact_key(SECRET, "A@example.org") == e.contact_key(SECRET, "a@example.org")


def test_signed_links_expire_and_cannot_be_altered() -> None:
    token = e.sign_link(SECRET, "self-abc", "enr-1", 2_000)
    assert e.read_link(SECRET, token, 1_999.0) == ("self-abc", "enr-1")
    with pytest.raises(e.BadLink) as expired:
        e.read_link(SECRET, token, 2_001.0)
    assert expired.value.code == "link_expired"
    body, mac = token.split(".")
    other = e.sign_link(SECRET, "self-xyz", "enr-1", 2_000).split(".")[0]
    newer = e.sign_link(SECRET, "self-abc", "enr-2", 2_000).split(".")[0]
    for bad in (
        f"{other}.{mac}",
        f"{newer}.{mac}",
        f"{body}.{'0' * 43}",
        token + "x",
        "",
        e.sign_link(b"x" * 32, "self-abc", "enr-1", 2_000),
    ):
        with pytest.raises(e.BadLink):
            e.read_link(SECRET, bad, 1_000.0)


def test_the_sign_up_page_has_words_for_every_key_in_both_languages() -> None:
    static = Path(e.__file__).parents[1] / "signup" / "static"
    html = (static / "signup.html").read_text(encoding="utf-8")
    script = (static / "signup.js").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n="(\w+)"', html)) | set(re.findall(r'\bt\("(\w+)"', script))
    table = script[script.index("const TEXT = ") : script.index("};\n") + 1].removeprefix("const TEXT = ")
    keys = {
        lang: set(re.findall(r'(?m)(?:^\s+|,\s+)(\w+): "', block)) for lang, block in _blocks(table).items()
    }
    assert used <= keys["en"] and keys["en"] == keys["zh-CN"], (used - keys["en"], keys["en"] ^ keys["zh-CN"])
    assert "<script>" not in html and "style=" not in html  # the page's policy forbids inline code


def _blocks(table: str) -> dict[str, str]:
    en = table.index("en: {")
    zh = table.index('"zh-CN": {')
    return {"en": table[en:zh], "zh-CN": table[zh:]}
