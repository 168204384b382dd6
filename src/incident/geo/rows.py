"""A row of an input file that was not loaded, or loaded with a change, and why (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """``where`` is ``line`` (CSV, 1-based, the header is line 1) or ``feature`` (GeoJSON,
    0-based index in ``features``). ``ref`` is the row's own id (account or valve id) when it
    had one. ``reason`` never contains personal data such as a phone number."""

    where: Literal["line", "feature"]
    number: int
    ref: str | None
    reason: str

    def __str__(self) -> str:
        who = f" ({self.ref})" if self.ref else ""
        return f"{self.where} {self.number}{who}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RowNote:
    """A row that was loaded with a change the operator should know of (e.g. a fixed-line
    number moved from ``sms`` to ``voice``). Same fields as :class:`RejectedRow`; ``reason``
    never contains personal data."""

    where: Literal["line", "feature"]
    number: int
    ref: str | None
    reason: str

    def __str__(self) -> str:
        who = f" ({self.ref})" if self.ref else ""
        return f"{self.where} {self.number}{who}: {self.reason}"
