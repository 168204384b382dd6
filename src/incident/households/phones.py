"""Phone numbers of households: E.164 as stored, national formats read with a default region,
and fixed lines told apart from mobiles (pure; Google's libphonenumber via ``phonenumbers``).

Loading a million households must stay fast, so the library is asked only when it must:

* a value that already looks E.164 is kept as it is (as before ``[area] default_region``);
  other values are parsed with the default region (about 10 µs each);
* "is this SMS number a fixed line?" is first answered from the country's metadata with a
  regular expression or two (about 1 µs): only a number that could be a fixed line in the
  region that owns it goes through ``phonenumbers.number_type`` (about 15 µs). The shortcut
  is exact: a number is FIXED_LINE only if the fixed-line pattern of the region that owns it
  matches and that region's mobile numbers look different.

No message here contains a number (they are personal data).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType

# E.164: "+", a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


#: Numbers an SMS may reach: mobiles, and those the metadata cannot tell from fixed lines
#: (all of NANP); a number that is only a fixed line is refused with its own message.
_MOBILE_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.FIXED_LINE}
)


class PhoneError(ValueError):
    """A value that is not a phone number this service can use (the message names no number)."""


def valid_region(region: str) -> bool:
    return region in phonenumbers.SUPPORTED_REGIONS


@dataclass(frozen=True, slots=True)
class _FixedLinePlan:
    """Which regions of a country code can own fixed lines that are not also mobiles."""

    #: Leading digits of such regions that are told apart by them (NANP area codes, ...).
    leading: re.Pattern[str] | None
    #: Fixed-line patterns of such regions that are told apart by the whole number.
    fixed: tuple[re.Pattern[str], ...]
    #: National prefixes (and carrier codes) libphonenumber strips even after a country code
    #: ("+86 0577…" is read as +86 577…): such a number takes the library's own path.
    prefix: re.Pattern[str] | None


def _distinct_fixed(metadata: PhoneMetadata | None) -> str | None:
    """The region's fixed-line pattern when its fixed lines and mobiles differ, else None."""
    if metadata is None or metadata.same_mobile_and_fixed_line_pattern:
        return None
    desc = metadata.fixed_line
    return desc.national_number_pattern if desc is not None else None


@functools.cache
def _plan(country_code: int) -> _FixedLinePlan:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    leading: list[str] = []
    fixed: list[re.Pattern[str]] = []
    prefixes: list[str] = []
    for region in regions:
        metadata = (
            PhoneMetadata.metadata_for_nongeo_region(country_code)
            if region == "001"
            else PhoneMetadata.metadata_for_region(region)
        )
        # Parsing strips with the country code's main region's prefix only (US for +1).
        if region == regions[0] and metadata is not None and metadata.national_prefix_for_parsing:
            prefixes.append(f"(?:{metadata.national_prefix_for_parsing})")
        pattern = _distinct_fixed(metadata)
        if pattern is None:
            continue
        if metadata is not None and metadata.leading_digits is not None and len(regions) > 1:
            # libphonenumber gives such a number to this region exactly when these match.
            leading.append(f"(?:{metadata.leading_digits})")
        else:
            fixed.append(re.compile(pattern))
    return _FixedLinePlan(
        re.compile("|".join(leading)) if leading else None,
        tuple(fixed),
        re.compile("|".join(prefixes)) if prefixes else None,
    )


def _split(number: str) -> tuple[int, str] | None:
    """Country code and national significant number of an E.164 string."""
    for size in (1, 2, 3):
        code = int(number[1 : 1 + size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, number[1 + size :]
    return None


class PhoneRules:
    """Reads the phone numbers of a households file; ``default_region`` (ISO 3166 code such
    as ``CN``, empty: none) is where a number without ``+`` and a country code is dialled."""

    def __init__(self, default_region: str = "") -> None:
        if default_region and not valid_region(default_region):
            raise ValueError(f"{default_region!r} is not a region phonenumbers knows (e.g. CN, US, GB)")
        self.default_region = default_region

    def e164(self, value: str) -> str:
        """``value`` in E.164, or :class:`PhoneError` saying why not."""
        if E164.fullmatch(value):
            return value
        if not self.default_region:
            raise PhoneError("is not E.164 (set [area] default_region to read national numbers)")
        try:
            number = phonenumbers.parse(value, self.default_region)
        except phonenumbers.NumberParseException:
            raise PhoneError(
                f"is not a phone number (read with default region {self.default_region})"
            ) from None
        if not phonenumbers.is_valid_number(number):
            raise PhoneError(f"is not a valid number (read with default region {self.default_region})")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    def mobile(self, value: str, regions: frozenset[str]) -> str:
        """``value`` in E.164 when it is a valid number of one of ``regions`` (ISO 3166 codes)
        that may be a mobile, else :class:`PhoneError`: a sign-up code goes only to such a
        number (an SMS to a premium or foreign number costs the utility money)."""
        e164 = self.e164(value)
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            raise PhoneError("is not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            raise PhoneError("is not a valid number")
        if phonenumbers.region_code_for_number(number) not in regions:
            raise PhoneError(f"is not in this service's region ({', '.join(sorted(regions))})")
        if phonenumbers.number_type(number) not in _MOBILE_TYPES:
            raise PhoneError("is not a mobile number")
        return e164

    @staticmethod
    def is_fixed_line(e164: str) -> bool:
        """True when libphonenumber says the E.164 number is a FIXED_LINE (not one that may be
        a mobile too): an SMS to it cannot arrive."""
        split = _split(e164)
        if split is None:
            return False
        code, national = split
        plan = _plan(code)
        maybe = (
            (plan.prefix is not None and plan.prefix.match(national) is not None)
            or (plan.leading is not None and plan.leading.match(national) is not None)
            or any(p.fullmatch(national) for p in plan.fixed)
        )
        if not maybe:
            return False
        try:
            number = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return False
        return bool(phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE)
