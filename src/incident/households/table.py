"""Households as columns: one NumPy array per field instead of a Python object each (pure).

A million :class:`Household` objects take about 450 MB; as columns (NumPy ``StringDType``
for text, small integer codes for language, priority and opt-out) they take about a third
of that. :class:`HouseholdTable` is still a ``Sequence[Household]``: indexing or iterating
makes the :class:`Household` values on the fly, so code written against a list of
households works unchanged. :class:`HouseholdTableBuilder` fills a table row by row in
bounded memory, for loading large files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from incident.households.model import Channel, Household, HouseholdSource, Need, Priority

#: Notify order: the most at risk first, then everyone else.
PRIORITY_ORDER: tuple[Priority | None, ...] = (
    Priority.medical,
    Priority.critical_facility,
    Priority.vulnerable,
    None,
)
PRIORITY_RANK: dict[Priority | None, int] = {p: i for i, p in enumerate(PRIORITY_ORDER)}
_CHANNEL_BIT = {Channel.sms: 1, Channel.voice: 2, Channel.push: 4, Channel.email: 8}
#: Opt-out sets by bit mask, shared by every household that has the same one.
_OPT_OUT = tuple(frozenset(c for c, bit in _CHANNEL_BIT.items() if mask & bit) for mask in range(16))
NEED_BIT = {Need.deaf_or_hard_of_hearing: 1, Need.blind_or_low_vision: 2, Need.medical_equipment: 4}
_NEEDS = tuple(frozenset(n for n, bit in NEED_BIT.items() if mask & bit) for mask in range(8))
#: Bits of ``flags``: the household signed itself up; its priority awaits confirmation.
SELF_ENROLLED = 1
PRIORITY_UNCONFIRMED = 2

STRING = np.dtypes.StringDType()
StrArray = NDArray[Any]  # NumPy StringDType: variable-width text, short strings stored inline
F64 = NDArray[np.float64]


def opt_out_bits(channels: Iterable[Channel]) -> int:
    return sum(_CHANNEL_BIT[c] for c in set(channels))


def need_bits(needs: Iterable[Need]) -> int:
    return sum(NEED_BIT[n] for n in set(needs))


def flag_bits(h: Household) -> int:
    return (SELF_ENROLLED if h.source is HouseholdSource.self_enrolled else 0) | (
        0 if h.priority_confirmed else PRIORITY_UNCONFIRMED
    )


@dataclass(frozen=True, eq=False)
class HouseholdTable(Sequence[Household]):
    """Households in columns; row ``i`` of every array is household ``i``."""

    account_id: StrArray
    lon: F64
    lat: F64
    address: StrArray
    #: Language tags, and the position in ``languages`` of each household's tag.
    languages: tuple[str, ...]
    language_code: NDArray[np.int16]
    sms: StrArray
    voice: StrArray
    app_token: StrArray
    #: Position in :data:`PRIORITY_ORDER` of each household's priority.
    priority_rank: NDArray[np.int8]
    #: Opted-out channels as bits (sms 1, voice 2, push 4, email 8).
    opt_out_bits: NDArray[np.uint8]
    email: StrArray
    #: Needs as bits (:data:`NEED_BIT`).
    need_bits: NDArray[np.uint8]
    #: :data:`SELF_ENROLLED` and :data:`PRIORITY_UNCONFIRMED` bits.
    flags: NDArray[np.uint8]

    @classmethod
    def from_households(cls, households: Iterable[Household]) -> HouseholdTable:
        if isinstance(households, HouseholdTable):
            return households
        builder = HouseholdTableBuilder()
        for household in households:
            builder.add(household)
        return builder.build()

    def __len__(self) -> int:
        return len(self.lon)

    @overload
    def __getitem__(self, index: int) -> Household: ...

    @overload
    def __getitem__(self, index: slice) -> HouseholdTable: ...

    def __getitem__(self, index: int | slice) -> Household | HouseholdTable:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        i = range(len(self))[index]  # IndexError and negative indices as for a tuple
        return self._row(
            str(self.account_id[i]), float(self.lon[i]), float(self.lat[i]), str(self.address[i]),
            int(self.language_code[i]), str(self.sms[i]), str(self.voice[i]), str(self.app_token[i]),
            int(self.priority_rank[i]), int(self.opt_out_bits[i]), str(self.email[i]),
            int(self.need_bits[i]), int(self.flags[i]),
        )  # fmt: skip

    def _row(
        self,
        account_id: str,
        lon: float,
        lat: float,
        address: str,
        language: int,
        sms: str,
        voice: str,
        app_token: str,
        rank: int,
        opt_out: int,
        email: str,
        needs: int,
        flags: int,
    ) -> Household:
        return Household(
            account_id, lon, lat, address, self.languages[language], sms, voice, app_token,
            PRIORITY_ORDER[rank], _OPT_OUT[opt_out], email,
            HouseholdSource.self_enrolled if flags & SELF_ENROLLED else HouseholdSource.file,
            _NEEDS[needs], not flags & PRIORITY_UNCONFIRMED,
        )  # fmt: skip

    def __iter__(self) -> Iterator[Household]:
        return self.iter_rows(np.arange(len(self), dtype=np.int64))

    def iter_rows(self, positions: NDArray[np.int64], chunk: int = 4096) -> Iterator[Household]:
        """The households at ``positions``, in that order, made a chunk at a time."""
        for begin in range(0, len(positions), chunk):
            at = positions[begin : begin + chunk]
            columns = (
                self.account_id[at].tolist(), self.lon[at].tolist(), self.lat[at].tolist(),
                self.address[at].tolist(), self.language_code[at].tolist(), self.sms[at].tolist(),
                self.voice[at].tolist(), self.app_token[at].tolist(), self.priority_rank[at].tolist(),
                self.opt_out_bits[at].tolist(), self.email[at].tolist(), self.need_bits[at].tolist(),
                self.flags[at].tolist(),
            )  # fmt: skip
            for row in zip(*columns, strict=True):
                yield self._row(*row)

    def take(self, positions: NDArray[np.int64]) -> HouseholdTable:
        """A new table of the rows at ``positions``, in that order."""
        return HouseholdTable(
            self.account_id[positions], self.lon[positions], self.lat[positions],
            self.address[positions], self.languages, self.language_code[positions],
            self.sms[positions], self.voice[positions], self.app_token[positions],
            self.priority_rank[positions], self.opt_out_bits[positions], self.email[positions],
            self.need_bits[positions], self.flags[positions],
        )  # fmt: skip

    def __repr__(self) -> str:
        # Never the columns: they hold phone numbers.
        return f"HouseholdTable({len(self)} households, languages={list(self.languages)})"

    @staticmethod
    def concat(tables: Sequence[HouseholdTable]) -> HouseholdTable:
        """The rows of every table, in order; language codes are re-mapped to one list."""
        languages = tuple(sorted({lang for t in tables for lang in t.languages}))
        code = {lang: i for i, lang in enumerate(languages)}
        recoded = [
            np.array([code[lang] for lang in t.languages] or [0], np.int16)[t.language_code] for t in tables
        ]

        def cat(name: str, dtype: Any) -> NDArray[Any]:
            parts = [getattr(t, name) for t in tables]
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        return HouseholdTable(
            cat("account_id", STRING), cat("lon", np.float64), cat("lat", np.float64),
            cat("address", STRING), languages,
            np.concatenate(recoded) if recoded else np.empty(0, np.int16),
            cat("sms", STRING), cat("voice", STRING), cat("app_token", STRING),
            cat("priority_rank", np.int8), cat("opt_out_bits", np.uint8), cat("email", STRING),
            cat("need_bits", np.uint8), cat("flags", np.uint8),
        )  # fmt: skip


class HouseholdTableBuilder:
    """Appends households one at a time. Python objects are held for one chunk at most and
    each column is joined on its own at the end, so the peak stays near the final size."""

    def __init__(self, chunk: int = 65_536) -> None:
        self._chunk = chunk
        self._done: dict[str, list[NDArray[Any]]] = {name: [] for name in _COLUMNS}
        self._languages: dict[str, int] = {}
        self._rows: dict[str, list[Any]] = {name: [] for name in _COLUMNS}

    def add(self, h: Household) -> None:
        rows = self._rows
        rows["account_id"].append(h.account_id)
        rows["lon"].append(h.lon)
        rows["lat"].append(h.lat)
        rows["address"].append(h.address)
        rows["language_code"].append(self._languages.setdefault(h.language, len(self._languages)))
        rows["sms"].append(h.sms)
        rows["voice"].append(h.voice)
        rows["app_token"].append(h.app_token)
        rows["priority_rank"].append(PRIORITY_RANK[h.priority])
        rows["opt_out_bits"].append(opt_out_bits(h.opt_out))
        rows["email"].append(h.email)
        rows["need_bits"].append(need_bits(h.needs))
        rows["flags"].append(flag_bits(h))
        if len(rows["lon"]) >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        for name, values in self._rows.items():
            if values:
                self._done[name].append(np.array(values, dtype=_COLUMNS[name]))
                values.clear()

    def build(self) -> HouseholdTable:
        self._flush()
        columns: dict[str, NDArray[Any]] = {}
        for name, parts in self._done.items():
            columns[name] = np.concatenate(parts) if parts else np.empty(0, _COLUMNS[name])
            parts.clear()  # free the chunks of this column before joining the next
        # Codes in order of first appearance -> sorted tags.
        first_seen = tuple(self._languages)
        languages = tuple(sorted(first_seen))
        recode = np.array([languages.index(t) for t in first_seen] or [0], np.int16)
        columns["language_code"] = recode[columns["language_code"]]
        return HouseholdTable(languages=languages, **columns)


_COLUMNS: dict[str, Any] = {
    "account_id": STRING,
    "lon": np.float64,
    "lat": np.float64,
    "address": STRING,
    "language_code": np.int16,
    "sms": STRING,
    "voice": STRING,
    "app_token": STRING,
    "priority_rank": np.int8,
    "opt_out_bits": np.uint8,
    "email": STRING,
    "need_bits": np.uint8,
    "flags": np.uint8,
}
