"""The parts a carrier bills for a message body (GSM 03.38 / 03.40).

Kept apart from :mod:`incident.notices.sms` on purpose: the simulator stands for Twilio, which
counts on its own, and imports nothing of ours. Rule: GSM-7 if every character is in the
default alphabet or its extension table (extension characters cost two septets), else UCS-2
(UTF-16 units); one part holds 160 septets / 70 units, each part of a longer message 153 / 67,
and a two-unit character is never split across parts.
"""

from __future__ import annotations

_DEFAULT = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_ESCAPED = frozenset("\f^{}\\[~]|€")
_GSM7 = _DEFAULT | _ESCAPED


def num_segments(body: str) -> int:
    """How many parts ``body`` is sent as (0 for an empty body)."""
    if not body:
        return 0
    if _GSM7.issuperset(body):
        units, whole, part = [2 if c in _ESCAPED else 1 for c in body], 160, 153
    else:
        units, whole, part = [2 if ord(c) > 0xFFFF else 1 for c in body], 70, 67
    if sum(units) <= whole:
        return 1
    parts, room = 1, part
    for unit in units:
        if unit > room:
            parts, room = parts + 1, part
        room -= unit
    return parts
