"""SMS encoding and segment counts (GSM 03.38 / 03.40), pure.

A text that uses only the GSM 7-bit default alphabet and its extension table is sent as
GSM-7; anything else (Chinese, emoji, curly quotes, an em dash) makes the whole message UCS-2.

    encoding  one message   each part of a longer one
    GSM-7     160 septets   153 septets   (extension characters ^{}\\[~]|€ and form feed take 2)
    UCS-2      70 units      67 units     (UTF-16 code units: an emoji outside the BMP takes 2)

A two-unit character (an escape sequence, a surrogate pair) is never split across two
parts, as handsets and carriers do, so a part may hold one unit less than its size.
"""

from __future__ import annotations

import msgspec

from incident.deliveries.records import Encoding

__all__ = ["GSM7_BASIC", "GSM7_EXTENDED", "Encoding", "SmsInfo", "sms_info"]

#: The GSM 03.38 default alphabet (the escape character 0x1B itself excluded).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each is sent as escape + character, so it counts as two septets.
GSM7_EXTENDED = frozenset("\f^{}\\[~]|€")

_SINGLE = {"gsm7": 160, "ucs2": 70}
_PART = {"gsm7": 153, "ucs2": 67}


class SmsInfo(msgspec.Struct, frozen=True, kw_only=True):
    """How a text travels as SMS.

    ``characters`` counts code points (what a reader sees); ``units`` counts what the
    carrier bills: septets for GSM-7, UTF-16 code units for UCS-2.
    """

    encoding: Encoding
    characters: int
    units: int
    segments: int


def _gsm7_costs(text: str) -> list[int] | None:
    costs = []
    for char in text:
        if char in GSM7_BASIC:
            costs.append(1)
        elif char in GSM7_EXTENDED:
            costs.append(2)
        else:
            return None
    return costs


def _segments(costs: list[int], single: int, part: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1 if total else 0
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


def sms_info(text: str) -> SmsInfo:
    """Encoding, length and number of parts of ``text`` sent as one SMS (empty text: 0 parts)."""
    costs = _gsm7_costs(text)
    encoding = Encoding.gsm7
    if costs is None:
        encoding = Encoding.ucs2
        costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
    return SmsInfo(
        encoding=encoding,
        characters=len(text),
        units=sum(costs),
        segments=_segments(costs, _SINGLE[encoding], _PART[encoding]),
    )
