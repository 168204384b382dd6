"""What a household's needs change about how it is reached (pure).

- ``deaf_or_hard_of_hearing``: never called (a call says nothing to them); the text
  channels go first.
- ``blind_or_low_vision``: called first, then the text channels (a screen reader still
  reads them).

A household with both is not called: a deaf-blind resident reads by braille or a screen
reader, not by ear. The order is the household's delivery order: its deliveries are planned
(and so sent) in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from incident.households.model import Channel, Need

__all__ = ["channels_for_needs"]


def channels_for_needs(needs: AbstractSet[Need], channels: Sequence[Channel]) -> tuple[Channel, ...]:
    """``channels`` (the notice's, in its order) in the order this household is reached on
    them, without the ones its needs rule out."""
    if Need.deaf_or_hard_of_hearing in needs:
        return tuple(c for c in channels if c is not Channel.voice)
    if Need.blind_or_low_vision in needs and Channel.voice in channels:
        return (Channel.voice, *(c for c in channels if c is not Channel.voice))
    return tuple(channels)
