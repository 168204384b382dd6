"""Segment counts worked out by hand: GSM-7 160/153 septets, UCS-2 70/67 UTF-16 units."""

from __future__ import annotations

import pytest

from incident.notices.sms import Encoding, sms_info


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", Encoding.gsm7, 0, 0),
        ("a" * 160, Encoding.gsm7, 160, 1),
        ("a" * 161, Encoding.gsm7, 161, 2),  # 153 + 8
        ("a" * 306, Encoding.gsm7, 306, 2),  # 153 + 153
        ("a" * 307, Encoding.gsm7, 307, 3),
        ("a" * 158 + "{", Encoding.gsm7, 160, 1),  # an extension character counts 2
        ("a" * 159 + "{", Encoding.gsm7, 161, 2),
        ("€" * 80, Encoding.gsm7, 160, 1),
        ("€" * 80 + "a", Encoding.gsm7, 161, 2),
        ("^{}\\[~]|€", Encoding.gsm7, 18, 1),
        ("Café à Zürich @ £5 § Δ", Encoding.gsm7, 22, 1),  # all in the basic set
        ("中" * 70, Encoding.ucs2, 70, 1),
        ("中" * 71, Encoding.ucs2, 71, 2),  # 67 + 4
        ("中" * 134, Encoding.ucs2, 134, 2),  # 67 + 67
        ("中" * 135, Encoding.ucs2, 135, 3),
        ("😀" * 35, Encoding.ucs2, 70, 1),  # an emoji is a surrogate pair: 2 units
        ("😀" * 35 + "a", Encoding.ucs2, 71, 2),
        ("a" * 159 + "—", Encoding.ucs2, 160, 3),  # one em dash makes all of it UCS-2: 67+67+26
        ("ê", Encoding.ucs2, 1, 1),  # ê is not in the GSM alphabet (é is)
    ],
)
def test_encoding_units_and_segments(text: str, encoding: Encoding, units: int, segments: int) -> None:
    info = sms_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert info.characters == len(text)


def test_an_escape_sequence_is_not_split_across_parts() -> None:
    # 306 septets would fit 2 x 153, but the euro sign (escape + e) cannot start in the
    # last septet of part 1: 152 | 2 + 151 | 1.
    assert sms_info("a" * 152 + "€" + "a" * 152).segments == 3
    assert sms_info("a" * 151 + "€" + "a" * 153).segments == 2


def test_a_surrogate_pair_is_not_split_across_parts() -> None:
    # 134 units would fit 2 x 67, but the emoji cannot straddle parts: 66 | 2 + 65 | 1.
    assert sms_info("中" * 66 + "😀" + "中" * 66).segments == 3
    assert sms_info("中" * 65 + "😀" + "中" * 67).segments == 2
    assert sms_info("中" * 66 + "😀" + "中" * 66).characters == 133
