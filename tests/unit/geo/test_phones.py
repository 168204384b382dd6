"""Households' phone numbers: national formats read with [area] default_region, fixed lines
kept out of SMS, and the service area's extent (issue 17, item 8)."""

from __future__ import annotations

import io
import random

import numpy as np
import phonenumbers
import pytest

from incident.geo import Extent, RejectedRow, RowNote
from incident.households import Household, PhoneRules, iter_households_csv

HEADER = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"
# Around Wenzhou (area code 577), where the Chinese numbers below belong.
EXTENT = Extent.around(np.array([120.6, 120.75]), np.array([27.95, 28.05]))


def parse(text: str, region: str = "", notes: list[RowNote] | None = None) -> list[Household | RejectedRow]:
    rows = io.StringIO(HEADER + text, newline="")
    return list(iter_households_csv(rows, extent=EXTENT, phones=PhoneRules(region), notes=notes))


def test_national_numbers_are_stored_in_e164_with_the_default_region() -> None:
    notes: list[RowNote] = []
    [h] = parse("A-1,120.66,28.0,,zh-CN,138 1000 0000,0577 8812 3456,,,\n", "CN", notes)
    assert isinstance(h, Household)
    assert (h.sms, h.voice) == ("+8613810000000", "+8657788123456")
    assert notes == []


def test_without_a_default_region_only_e164_is_accepted() -> None:
    [bad] = parse("A-1,120.66,28.0,,zh-CN,138 1000 0000,,,,\n")
    assert isinstance(bad, RejectedRow)
    assert "sms number is not E.164" in bad.reason and "default_region" in bad.reason
    assert "138" not in bad.reason


def test_a_number_that_is_not_valid_in_the_region_is_rejected_without_showing_it() -> None:
    [bad] = parse("A-1,120.66,28.0,,zh-CN,,12345,,,\n", "CN")
    assert isinstance(bad, RejectedRow)
    assert "voice number is not a valid number" in bad.reason and "12345" not in str(bad)


@pytest.mark.parametrize(
    ("sms", "voice", "want_sms", "want_voice", "why"),
    [
        ("0577 8812 3456", "", "", "+8657788123456", "moved to voice"),
        ("+8657788123456", "+8657788123456", "", "+8657788123456", "kept as the voice number only"),
        ("+8657788123456", "138 1000 0000", "", "+8613810000000", "dropped"),
        ("138 1000 0000", "", "+8613810000000", "", None),  # a mobile stays
    ],
)
def test_a_fixed_line_in_sms_goes_to_voice_and_the_row_says_why(
    sms: str, voice: str, want_sms: str, want_voice: str, why: str | None
) -> None:
    notes: list[RowNote] = []
    [h] = parse(f"A-1,120.66,28.0,,zh-CN,{sms},{voice},,,\n", "CN", notes)
    assert isinstance(h, Household)
    assert (h.sms, h.voice) == (want_sms, want_voice)
    if why is None:
        assert notes == []
    else:
        [note] = notes
        assert (note.where, note.number, note.ref) == ("line", 2, "A-1")
        assert "fixed line" in note.reason and why in note.reason
        assert "8812" not in str(note)  # a phone number is personal data


def test_positions_outside_the_service_area_or_swapped_are_rejected_with_the_reason() -> None:
    rows = parse("A,120.66,28.0,,en,,,,,\nB,28.0,120.66,,en,,,,,\nC,-85.6,38.0,,en,,,,,\n")
    assert isinstance(rows[0], Household)
    assert isinstance(rows[1], RejectedRow) and "look swapped" in rows[1].reason
    assert isinstance(rows[2], RejectedRow)
    assert rows[2].number == 4 and "outside the service area" in rows[2].reason


def test_an_unknown_default_region_is_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        PhoneRules("XX")


def test_the_fixed_line_shortcut_agrees_with_libphonenumber() -> None:
    """The fast path answers from metadata; it must say what number_type says, everywhere."""
    rng = random.Random(17)
    numbers = [
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE)
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    for code in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE):
        for _ in range(40):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 11)))
            if len(f"+{code}{digits}") <= 16:
                numbers.append(f"+{code}{digits}")
    fixed = 0
    for number in numbers:
        expected = (
            phonenumbers.number_type(phonenumbers.parse(number)) == phonenumbers.PhoneNumberType.FIXED_LINE
        )
        assert PhoneRules.is_fixed_line(number) is expected, number
        fixed += expected
    assert fixed > 200  # the sample holds enough fixed lines to mean something
