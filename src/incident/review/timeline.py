"""The timeline as CSV, one row per event with its plain-language summary. Pure."""

from __future__ import annotations

import csv
import io

import orjson

from incident.core.domain import TimelineEvent, describe

CSV_COLUMNS = ("incident_id", "seq", "at", "type", "actor", "summary", "data", "prev_hash", "hash")


def _cell(value: str) -> str:
    # Spreadsheets run cells that start with these as formulas; a note must stay text.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def timeline_csv(events: list[TimelineEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in events:
        data = orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode()
        writer.writerow(
            [
                e.incident_id,
                e.seq,
                e.at,
                _cell(e.type),
                _cell(e.actor),
                _cell(describe(e)),
                _cell(data),
                e.prev_hash,
                e.hash,
            ]
        )
    return out.getvalue()
