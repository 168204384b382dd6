from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from incident.geo import FileFormatError, RejectedRow
from incident.households import (
    Channel,
    EmailError,
    Household,
    HouseholdSource,
    Need,
    Priority,
    Progress,
    iter_households_csv,
    iter_households_file,
    iter_households_geojson,
    load_households,
    normalise_email,
)

HEADER = "account_id,lon,lat,address,language,sms,voice,app_token,priority,opt_out\n"
SECRET = "+15025550142"


def parse(text: str) -> list[Household | RejectedRow]:
    return list(iter_households_csv(io.StringIO(text, newline="")))


def test_good_row_is_parsed_and_normalised() -> None:
    [h] = parse(HEADER + f'A-1,-85.61,38.04,"1 Main St, Town",zh-cn,{SECRET},,tok,medical,sms| push\n')
    assert isinstance(h, Household)
    assert (h.account_id, h.lon, h.lat, h.address) == ("A-1", -85.61, 38.04, "1 Main St, Town")
    assert h.language == "zh-CN"
    assert h.priority is Priority.medical
    assert h.opt_out == frozenset({Channel.sms, Channel.push})
    # sms opted out, no voice number, push opted out: nothing left to reach them by.
    assert h.channels() == ()


def test_header_may_reorder_columns_and_add_others() -> None:
    text = "opt_out,priority,app_token,voice,sms,language,address,lat,lon,account_id,extra\n"
    text += ",,,+4477009001234,,en,,51.5,-0.1,B-2,x\n"
    [h] = parse(text)
    assert isinstance(h, Household)
    assert (h.lon, h.lat, h.voice) == (-0.1, 51.5, "+4477009001234")
    assert h.channels() == (Channel.voice,)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ("A,-185,38,,en,,,,,", "lon"),
        ("A,-85,90.5,,en,,,,,", "lat"),
        ("A,abc,38,,en,,,,,", "lon is not a number"),
        ("A,nan,38,,en,,,,,", "lon"),
        ("A,,38,,en,,,,,", "lon is missing"),
        ("A,-85,38,,xx-YY,,,,,", "not a known BCP 47 tag"),
        ("A,-85,38,,,,,,,", "language is missing"),
        (f"A,-85,38,,en,{SECRET[1:]},,,,", "sms number is not E.164"),
        ("A,-85,38,,en,,+1 502 555 0142,,,", "voice number is not E.164"),
        ("A,-85,38,,en,,,,urgent,", "priority 'urgent'"),
        ("A,-85,38,,en,,,,,sms|fax", "opt_out channel 'fax'"),
        ("A,-85,38,,en,,,,,,,", "row has 12 fields"),
        (",-85,38,,en,,,,,", "account_id is missing"),
        ("A,-85,38,,en,,,", "row has 8 fields"),
    ],
)
def test_bad_rows_are_rejected_with_line_and_reason(fields: str, reason: str) -> None:
    rows = parse(HEADER + "OK-1,-85,38,,en,,,,,\n" + fields + "\n")
    assert isinstance(rows[0], Household)
    bad = rows[1]
    assert isinstance(bad, RejectedRow)
    assert (bad.where, bad.number) == ("line", 3)
    assert reason in bad.reason


def test_optional_email_and_needs_columns() -> None:
    text = HEADER.rstrip("\n") + ",email,needs\n"
    text += "A-1,-85,38,,en,,,,,,Jo.Smith+alerts@Example.ORG,deaf_or_hard_of_hearing; medical_equipment\n"
    text += "A-2,-85,38,,en,,,,,email,,\n"
    text += "A-3,-85,38,,en,,,,,,jo@@example.org,\n"
    text += "A-4,-85,38,,en,,,,,,,blind\n"
    one, two, three, four = parse(text)
    assert isinstance(one, Household) and isinstance(two, Household)
    assert one.email == "Jo.Smith+alerts@example.org"
    assert one.needs == frozenset({Need.deaf_or_hard_of_hearing, Need.medical_equipment})
    assert one.channels() == (Channel.email,) and one.source is HouseholdSource.file
    assert one.priority is None and one.priority_confirmed  # a file's priority column is the utility's word
    assert two.opt_out == frozenset({Channel.email}) and two.needs == frozenset()
    assert isinstance(three, RejectedRow) and "email" in three.reason and "jo@" not in three.reason
    assert isinstance(four, RejectedRow) and "need 'blind' is not one of" in four.reason
    [old] = parse(HEADER + "A-5,-85,38,,en,,,,,\n")  # files without the columns still load
    assert isinstance(old, Household) and (old.email, old.needs) == ("", frozenset())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" a.b@Mail.Example.COM ", "a.b@mail.example.com"),
        ("Ann@Bücher.example", "Ann@xn--bcher-kva.example"),
        ("x@localhost", None),
        ("x y@example.org", None),
        ("@example.org", None),
        ("x@-example.org", None),
        ("x@example.123", None),
        ("x@example..org", None),
        ("a" * 65 + "@example.org", None),
        ("x@" + "a" * 250 + ".org", None),
        ("x@example.org\r\nBcc: y@example.org", None),
    ],
)
def test_email_addresses_are_normalised_or_refused(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(EmailError):
            normalise_email(text)
    else:
        assert normalise_email(text) == expected


def test_phone_numbers_never_reach_messages() -> None:
    bad_number = SECRET + "99999"  # too long for E.164
    rows = parse(HEADER + f"A,-85,38,,en,{bad_number},{bad_number},,,\nB,-85,38,,en,{SECRET},{SECRET},,,\n")
    assert isinstance(rows[0], RejectedRow)
    assert bad_number not in str(rows[0]) and bad_number not in repr(rows[0])
    assert SECRET not in repr(rows[1]) and SECRET not in str(rows[1])


def test_repeated_account_keeps_the_first() -> None:
    rows = parse(HEADER + "A,-85,38,,en,,,,,\nA,-86,38,,en,,,,,\n")
    assert isinstance(rows[0], Household) and rows[0].lon == -85
    assert isinstance(rows[1], RejectedRow) and "earlier" in rows[1].reason


def test_line_numbers_count_physical_lines() -> None:
    text = HEADER + 'A,-85,38,"two\nlines",en,,,,,\n\nB,-85,38,,en,,,,bad,\n'
    rows = parse(text)
    assert isinstance(rows[0], Household) and rows[0].address == "two\nlines"
    assert isinstance(rows[1], RejectedRow) and rows[1].number == 5


def test_missing_column_fails_the_whole_file() -> None:
    with pytest.raises(FileFormatError, match="opt_out"):
        parse("account_id,lon,lat,address,language,sms,voice,app_token,priority\n")
    with pytest.raises(FileFormatError):
        parse("")


def test_csv_streams_row_by_row() -> None:
    def lines() -> Iterator[str]:
        yield HEADER
        yield "A,-85,38,,en,,,,,\n"
        raise AssertionError("read past the first row")

    first = next(iter_households_csv(lines()))
    assert isinstance(first, Household) and first.account_id == "A"


def _feature(props: dict[str, object], coords: list[float] | None = None) -> dict[str, object]:
    geometry = {"type": "Point", "coordinates": coords} if coords is not None else None
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _collection() -> str:
    features = [
        _feature({"account_id": "G-1", "language": "en", "sms": SECRET, "opt_out": ["voice"]}, [-85.6, 38.0]),
        _feature({"account_id": "G-2", "language": "en", "priority": "vulnerable"}, [-85.6, 95.0]),
        _feature({"account_id": "G-3", "language": "en"}),
        _feature({"account_id": "G-4", "language": "es", "priority": None, "sms": None}, [-85.5, 38.1]),
    ]
    # "features" before "type" and a decoy "features" key inside properties.
    features[3]["properties"]["features"] = [1, 2]  # type: ignore[index]
    return json.dumps({"features": features, "type": "FeatureCollection", "name": "x"})


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_geojson_households_stream_in_any_chunking(chunk: int) -> None:
    text = _collection()
    rows = list(iter_households_geojson(text[i : i + chunk] for i in range(0, len(text), chunk)))
    assert [type(r).__name__ for r in rows] == ["Household", "RejectedRow", "RejectedRow", "Household"]
    g1, bad_lat, no_point, g4 = rows
    assert isinstance(g1, Household) and g1.opt_out == {Channel.voice} and (g1.lon, g1.lat) == (-85.6, 38.0)
    assert isinstance(bad_lat, RejectedRow) and (bad_lat.where, bad_lat.number) == ("feature", 1)
    assert "lat" in bad_lat.reason
    assert isinstance(no_point, RejectedRow) and no_point.number == 2 and "Point" in no_point.reason
    assert isinstance(g4, Household) and g4.priority is None and g4.sms == ""


@pytest.mark.parametrize("suffix", [".csv", ".geojson"])
def test_file_reading_reports_progress(tmp_path: Path, suffix: str) -> None:
    count = 2500
    path = tmp_path / f"households{suffix}"
    if suffix == ".csv":
        path.write_text(
            HEADER + "".join(f"A-{i},-85.6,38.0,,en,,,,,\n" for i in range(count)), encoding="utf-8"
        )
    else:
        features = [_feature({"account_id": f"A-{i}", "language": "en"}, [-85.6, 38.0]) for i in range(count)]
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    seen: list[Progress] = []
    rows = list(iter_households_file(path, seen.append, every=1000))
    assert len(rows) == count
    assert [p.rows for p in seen] == [1000, 2000, count]
    assert all(p.bytes_total == path.stat().st_size for p in seen)
    assert [p.bytes_read for p in seen] == sorted(p.bytes_read for p in seen)
    assert seen[-1].bytes_read == seen[-1].bytes_total
    loaded = load_households(path)
    assert len(loaded.households) == count and loaded.rejected == ()


def test_file_that_is_not_utf8_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(HEADER.encode() + b"A,-85,38,\xff\xfe,en,,,,,\n")
    with pytest.raises(FileFormatError, match="UTF-8"):
        load_households(path)
