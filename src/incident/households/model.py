"""Households and the validation of one households-file row (pure).

A row is a mapping of the contract's column names to raw values (CSV strings, or GeoJSON
property values). :class:`RowValidator` turns each into a :class:`Household` or a
:class:`RejectedRow`; it is stateful only to catch a repeated ``account_id``.

Phone numbers are personal data: no message built here contains one.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import langcodes

from incident.geo.errors import FileFormatError
from incident.geo.extent import Extent, swapped_into
from incident.geo.geojson import iter_features
from incident.geo.rows import RejectedRow, RowNote
from incident.households.emails import EmailError, normalise_email
from incident.households.phones import PhoneError, PhoneRules


class Priority(StrEnum):
    medical = "medical"
    critical_facility = "critical_facility"
    vulnerable = "vulnerable"


class Channel(StrEnum):
    sms = "sms"
    voice = "voice"
    push = "push"
    email = "email"


class Need(StrEnum):
    """What a household told us it needs (self-enrolment, or the file's ``needs`` column)."""

    #: Never called; text channels first.
    deaf_or_hard_of_hearing = "deaf_or_hard_of_hearing"
    #: Called first.
    blind_or_low_vision = "blind_or_low_vision"
    #: Priority ``medical`` (unconfirmed until the utility confirms a self-enrolled one).
    medical_equipment = "medical_equipment"


class HouseholdSource(StrEnum):
    """Where a household came from: the utility's file (the billing import) or a resident's
    own sign-up. The import never overwrites or removes a self-enrolled household."""

    file = "file"
    self_enrolled = "self"


#: The contract's column order; CSV headers may order them freely.
COLUMNS: tuple[str, ...] = (
    "account_id",
    "lon",
    "lat",
    "address",
    "language",
    "sms",
    "voice",
    "app_token",
    "priority",
    "opt_out",
)
#: Columns a file may have besides :data:`COLUMNS`.
OPTIONAL_COLUMNS: tuple[str, ...] = ("email", "needs")


@dataclass(frozen=True, slots=True)
class Household:
    account_id: str
    lon: float
    lat: float
    address: str
    language: str
    sms: str
    voice: str
    app_token: str
    priority: Priority | None
    opt_out: frozenset[Channel]
    email: str = ""
    source: HouseholdSource = HouseholdSource.file
    needs: frozenset[Need] = frozenset()
    #: False while a self-enrolled ``medical_equipment`` priority awaits the utility's
    #: confirmation (dispatchers see it as unconfirmed).
    priority_confirmed: bool = True

    def channels(self) -> tuple[Channel, ...]:
        """Channels this household can be reached on, in the contract's order."""
        have = {
            Channel.sms: bool(self.sms),
            Channel.voice: bool(self.voice),
            Channel.push: bool(self.app_token),
            Channel.email: bool(self.email),
        }
        return tuple(c for c in Channel if have[c] and c not in self.opt_out)

    def __repr__(self) -> str:
        # The default repr would print phone numbers into any log or traceback that shows it.
        return (
            f"Household(account_id={self.account_id!r}, priority={self.priority}, language={self.language!r})"
        )


class _Bad(Exception):
    pass


def _text(row: Mapping[str, object], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad(f"{key} must be text")
    return str(value).strip()


def _coordinate(row: Mapping[str, object], key: str, limit: float) -> float:
    value = row.get(key)
    if isinstance(value, bool):
        raise _Bad(f"{key} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            raise _Bad(f"{key} is not a number") from None
    else:
        raise _Bad(f"{key} is missing")
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise _Bad(f"{key} {number!r} is outside -{limit:g}..{limit:g}")
    return number


@functools.lru_cache(maxsize=4096)
def _standard_tag(tag: str) -> str | None:
    """The one spelling of a BCP 47 tag, None when it is not one (few tags: cached)."""
    try:
        valid = langcodes.tag_is_valid(tag)
    except ValueError:
        valid = False
    # One spelling per language, so templates/notices/<language>/ is found for "zh-cn" too.
    return str(langcodes.standardize_tag(tag)) if valid else None


def _language(row: Mapping[str, object]) -> str:
    tag = _text(row, "language")
    if not tag:
        raise _Bad("language is missing")
    standard = _standard_tag(tag)
    if standard is None:
        raise _Bad(f"language {tag!r} is not a known BCP 47 tag")
    return standard


def _position(row: Mapping[str, object], extent: Extent | None) -> tuple[float, float]:
    lon = _coordinate(row, "lon", 180.0)
    try:
        lat = _coordinate(row, "lat", 90.0)
    except _Bad as bad:
        value = row.get("lat")
        if abs(lon) <= 90 and isinstance(value, str | int | float) and not isinstance(value, bool):
            try:
                swapped = abs(float(value)) <= 180
            except ValueError:
                swapped = False
            if swapped:
                raise _Bad(f"{bad}; lon and lat look swapped (the file gives lat, lon?)") from None
        raise
    if extent is not None and not extent.intersects_box(lon, lat, lon, lat):
        if swapped_into(lon, lat, extent):
            raise _Bad(
                f"position ({lon:g}, {lat:g}) is outside the service area and inside it with lon and "
                "lat exchanged: lon and lat look swapped"
            )
        raise _Bad(f"position ({lon:g}, {lat:g}) is outside the service area ({extent})")
    return lon, lat


def _phone(row: Mapping[str, object], key: str, phones: PhoneRules) -> str:
    number = _text(row, key)
    if not number:
        return ""
    try:
        return phones.e164(number)
    except PhoneError as err:
        raise _Bad(f"{key} number {err}") from None


def _numbers(row: Mapping[str, object], phones: PhoneRules) -> tuple[str, str, str | None]:
    """The sms and voice numbers, and a note when a fixed line was taken out of ``sms``: an
    SMS to a landline never arrives, so it is called instead, without waiting for the
    carrier to refuse it."""
    sms = _phone(row, "sms", phones)
    voice = _phone(row, "voice", phones)
    if not sms or not phones.is_fixed_line(sms):
        return sms, voice, None
    if not voice:
        return "", sms, "the sms number is a fixed line: moved to voice"
    if voice == sms:
        return "", voice, "the sms number is a fixed line: kept as the voice number only"
    return "", voice, "the sms number is a fixed line: dropped (the row has another voice number)"


def _priority(row: Mapping[str, object]) -> Priority | None:
    value = _text(row, "priority")
    if not value:
        return None
    try:
        return Priority(value)
    except ValueError:
        allowed = " | ".join(p.value for p in Priority)
        raise _Bad(f"priority {value!r} is not one of {allowed}") from None


def _opt_out(row: Mapping[str, object]) -> frozenset[Channel]:
    value = row.get("opt_out")
    if value is None:
        return frozenset()
    if isinstance(value, list):
        parts = [str(v).strip() for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split("|")]
    else:
        raise _Bad("opt_out must be channels separated by |")
    channels: set[Channel] = set()
    for part in parts:
        if not part:
            continue
        try:
            channels.add(Channel(part))
        except ValueError:
            allowed = " | ".join(c.value for c in Channel)
            raise _Bad(f"opt_out channel {part!r} is not one of {allowed}") from None
    return frozenset(channels)


def _email(row: Mapping[str, object]) -> str:
    address = _text(row, "email")
    if not address:
        return ""
    try:
        return normalise_email(address)
    except EmailError as err:
        raise _Bad(f"email {err}") from None


def _needs(row: Mapping[str, object]) -> frozenset[Need]:
    value = row.get("needs")
    if value is None:
        return frozenset()
    if isinstance(value, list):
        parts = [str(v).strip() for v in value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(";")]
    else:
        raise _Bad("needs must be needs separated by ;")
    needs: set[Need] = set()
    for part in parts:
        if not part:
            continue
        try:
            needs.add(Need(part))
        except ValueError:
            allowed = " | ".join(n.value for n in Need)
            raise _Bad(f"need {part[:40]!r} is not one of {allowed}") from None
    return frozenset(needs)


class RowValidator:
    """Validates rows one by one; remembers account ids to reject a repeated one.

    ``check_repeats=False`` leaves repeats to the caller (a columnar loader finds them in
    one pass at the end instead of holding a set of every id). With the service area's
    ``extent``, a row outside it is rejected (saying so when lon and lat look swapped).
    ``phones`` reads the numbers (``[area] default_region``); rows loaded with a change
    (a fixed line taken out of ``sms``) are appended to ``notes``."""

    def __init__(
        self,
        *,
        check_repeats: bool = True,
        extent: Extent | None = None,
        phones: PhoneRules | None = None,
        notes: list[RowNote] | None = None,
    ) -> None:
        self._seen: set[str] = set()
        self._check_repeats = check_repeats
        self._extent = extent
        self._phones = phones or PhoneRules()
        self.notes: list[RowNote] = notes if notes is not None else []

    def validate(
        self, row: Mapping[str, object], where: Literal["line", "feature"], number: int
    ) -> Household | RejectedRow:
        account_id: str | None = None
        try:
            account_id = _text(row, "account_id") or None
            if account_id is None:
                raise _Bad("account_id is missing")
            if self._check_repeats and account_id in self._seen:
                raise _Bad("account_id appears earlier in the file")
            lon, lat = _position(row, self._extent)
            sms, voice, note = _numbers(row, self._phones)
            household = Household(
                account_id=account_id,
                lon=lon,
                lat=lat,
                address=_text(row, "address"),
                language=_language(row),
                sms=sms,
                voice=voice,
                app_token=_text(row, "app_token"),
                priority=_priority(row),
                opt_out=_opt_out(row),
                email=_email(row),
                needs=_needs(row),
            )
        except _Bad as bad:
            return RejectedRow(where, number, account_id, str(bad))
        if self._check_repeats:
            self._seen.add(account_id)
        if note is not None:
            self.notes.append(RowNote(where, number, account_id, note))
        return household


Numbered = tuple[int, "Household | RejectedRow"]


def iter_households_csv(
    lines: Iterable[str],
    *,
    extent: Extent | None = None,
    phones: PhoneRules | None = None,
    notes: list[RowNote] | None = None,
) -> Iterator[Household | RejectedRow]:
    """Yield a household or a rejected row for each data row of a households CSV."""
    for _, item in numbered_households_csv(lines, RowValidator(extent=extent, phones=phones, notes=notes)):
        yield item


def numbered_households_csv(lines: Iterable[str], validator: RowValidator) -> Iterator[Numbered]:
    """As :func:`iter_households_csv`, each item with its line number."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise FileFormatError("households CSV is empty: expected a header row") from None
    except csv.Error as err:
        raise FileFormatError(f"households CSV header cannot be read: {err}") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise FileFormatError(f"households CSV header lacks column(s): {', '.join(missing)}")
    last_line = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # csv.Error texts may quote the offending data, which may hold a number: keep it out.
            yield last_line + 1, RejectedRow("line", last_line + 1, None, "row is not valid CSV")
            last_line = reader.line_num
            continue
        line, last_line = last_line + 1, reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != len(names):
            yield (
                line,
                RejectedRow("line", line, None, f"row has {len(fields)} fields, the header has {len(names)}"),
            )
            continue
        yield line, validator.validate(dict(zip(names, fields, strict=True)), "line", line)


def iter_households_geojson(
    chunks: Iterable[str],
    *,
    extent: Extent | None = None,
    phones: PhoneRules | None = None,
    notes: list[RowNote] | None = None,
) -> Iterator[Household | RejectedRow]:
    """Yield a household or a rejected row for each feature of a households FeatureCollection.

    The point geometry gives ``lon``/``lat``; the other columns are feature properties.
    """
    validator = RowValidator(extent=extent, phones=phones, notes=notes)
    for _, item in numbered_households_geojson(chunks, validator):
        yield item


def numbered_households_geojson(chunks: Iterable[str], validator: RowValidator) -> Iterator[Numbered]:
    """As :func:`iter_households_geojson`, each item with its feature index."""
    for index, feature in enumerate(iter_features(chunks)):
        properties = feature.get("properties")
        geometry = feature.get("geometry")
        if not isinstance(properties, dict):
            yield index, RejectedRow("feature", index, None, "feature has no properties object")
            continue
        row: dict[str, object] = dict(properties)
        if "account_id" not in row and isinstance(feature.get("id"), str | int):
            row["account_id"] = feature["id"]
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point" or not isinstance(coords, list):
            account = row.get("account_id")
            yield (
                index,
                RejectedRow(
                    "feature", index, account if isinstance(account, str) else None, "geometry is not a Point"
                ),
            )
            continue
        row["lon"] = coords[0] if len(coords) > 0 else None
        row["lat"] = coords[1] if len(coords) > 1 else None
        yield index, validator.validate(row, "feature", index)


def standard_tag(tag: str) -> str | None:
    """The one spelling of a BCP 47 tag, None when it is not one."""
    return _standard_tag(tag)
