"""The tamper-evident timeline: each event carries the SHA-256 of its predecessor and of its
own content, so editing, reordering or deleting a stored event breaks the chain.

Deleting the newest event would leave a shorter valid chain, so the incident row keeps the
head (``last_seq``, ``head_hash``) and :func:`verify` checks the chain ends there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import orjson

from incident.core.clock import isoformat
from incident.core.domain import EventDraft, Incident, TimelineEvent, apply_event

GENESIS = "0" * 64


def canonical(incident_id: str, seq: int, type_: str, actor: str, at: str, data: Any) -> bytes:
    """The bytes an event's hash covers: sorted-key JSON, so storage formatting is irrelevant."""
    body = {"incident_id": incident_id, "seq": seq, "type": type_, "actor": actor, "at": at, "data": data}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


def seal(
    incident_id: str,
    state: Incident | None,
    drafts: Sequence[EventDraft],
    at: datetime,
) -> tuple[Incident, list[TimelineEvent]]:
    """Number, time-stamp and hash ``drafts`` after ``state``; return the new state too."""
    seq = state.last_seq if state else 0
    prev = state.head_hash if state else GENESIS
    when = isoformat(at)
    events: list[TimelineEvent] = []
    for draft in drafts:
        seq += 1
        # Round-trip through JSON so the hashed data is exactly what is stored and read back.
        data = orjson.loads(orjson.dumps(draft.data))
        digest = chain_hash(prev, canonical(incident_id, seq, draft.type, draft.actor, when, data))
        event = TimelineEvent(
            incident_id=incident_id,
            seq=seq,
            type=draft.type,
            actor=draft.actor,
            at=when,
            data=data,
            prev_hash=prev,
            hash=digest,
        )
        state = apply_event(state, event)
        events.append(event)
        prev = digest
    if state is None:
        raise ValueError("seal() needs at least one event for a new incident")
    return state, events


class Integrity(msgspec.Struct, frozen=True, kw_only=True):
    """The result of checking one incident's chain."""

    incident_id: str
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problems: list[str]


def verify(incident_id: str, events: Iterable[TimelineEvent], stored: Incident | None) -> Integrity:
    """Recompute every hash, check sequence and links, the head, and the projection."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    state: Incident | None = None
    for event in events:
        count += 1
        if event.seq != expected_seq:
            problems.append(f"event {event.seq}: expected sequence number {expected_seq} (gap or reorder)")
            expected_seq = event.seq
        if event.prev_hash != prev:
            problems.append(f"event {event.seq}: does not link to the event before it")
        digest = chain_hash(
            event.prev_hash,
            canonical(event.incident_id, event.seq, event.type, event.actor, event.at, event.data),
        )
        if digest != event.hash:
            problems.append(f"event {event.seq}: content does not match its hash (altered)")
        if not isinstance(event.data, dict):
            problems.append(f"event {event.seq}: its data is not an object")
        else:
            try:
                state = apply_event(state, event)
            except Exception as err:  # a tampered event may break the fold in any way: report it
                problems.append(f"event {event.seq}: cannot be applied ({type(err).__name__}: {err})")
        prev = event.hash
        expected_seq += 1
    if stored is None:
        problems.append("no incident record")
    else:
        if stored.last_seq != count or stored.head_hash != prev:
            problems.append(
                f"incident record ends at event {stored.last_seq} but the chain ends at event "
                f"{count} (events deleted or appended outside the service)"
            )
        if state is not None and state != stored:
            problems.append("incident record differs from the state its events give")
    return Integrity(
        incident_id=incident_id,
        ok=not problems,
        events=count,
        head_seq=count,
        head_hash=prev,
        problems=problems,
    )
