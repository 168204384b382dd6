from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgspec
import orjson

from incident.core import domain
from incident.core.domain import Declaration, Kind, Severity, Utility
from incident.core.timeline import GENESIS, seal, verify

AT = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
DECL = Declaration(
    kind=Kind.contamination, utility=Utility.water, title="E. coli at ST-17", severity=Severity.high
)


def _chain(n_notes: int = 3) -> tuple[domain.Incident, list[domain.TimelineEvent]]:
    state, events = seal("INC-2026-000007", None, domain.declare(DECL, "alice", owner="alice"), AT)
    for i in range(n_notes):
        state, more = seal(state.id, state, domain.add_note(state, f"note {i}", "alice"), AT)
        events += more
    return state, events


def test_hash_is_sha256_of_previous_hash_and_canonical_content() -> None:
    _, events = _chain(0)
    [first] = events
    content = orjson.dumps(
        {
            "incident_id": first.incident_id,
            "seq": 1,
            "type": "declared",
            "actor": "alice",
            "at": "2026-11-22T08:15:00.000000+00:00",
            "data": first.data,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    assert first.prev_hash == GENESIS
    assert first.hash == hashlib.sha256(GENESIS.encode() + b"\n" + content).hexdigest()


def test_an_untouched_chain_verifies() -> None:
    state, events = _chain()
    result = verify(state.id, events, state)
    assert result.ok and result.problems == [] and result.events == 4 and result.head_hash == state.head_hash
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]


def test_editing_any_field_is_detected() -> None:
    state, events = _chain()
    for field, value in [
        ("actor", "mallory"),
        ("at", "2026-11-21T00:00:00.000000+00:00"),
        ("type", "note_deleted"),
        ("data", {"text": "nothing"}),
    ]:
        forged = list(events)
        forged[2] = msgspec.structs.replace(events[2], **{field: value})
        result = verify(state.id, forged, state)
        assert not result.ok, field
        assert any("event 3" in p for p in result.problems), (field, result.problems)


def test_rehashing_a_forged_event_still_breaks_the_next_link() -> None:
    state, events = _chain()
    forged_event = msgspec.structs.replace(events[1], data={"text": "forged"})
    from incident.core.timeline import canonical, chain_hash

    rehashed = msgspec.structs.replace(
        forged_event,
        hash=chain_hash(
            forged_event.prev_hash,
            canonical(state.id, 2, "note_added", "alice", forged_event.at, {"text": "forged"}),
        ),
    )
    result = verify(state.id, [events[0], rehashed, *events[2:]], state)
    assert not result.ok
    assert any("event 3: does not link" in p for p in result.problems)


def test_deleting_reordering_and_truncating_are_detected() -> None:
    state, events = _chain()
    assert not verify(state.id, [events[0], events[2], events[3]], state).ok
    assert not verify(state.id, [events[0], events[2], events[1], events[3]], state).ok
    truncated = verify(state.id, events[:-1], state)
    assert not truncated.ok and "incident record ends at event 4" in truncated.problems[0]


def test_a_record_that_disagrees_with_its_events_is_detected() -> None:
    state, events = _chain()
    forged_record = msgspec.structs.replace(state, owner="mallory")
    result = verify(state.id, events, forged_record)
    assert result.problems == ["incident record differs from the state its events give"]


def test_events_that_cannot_even_be_folded_are_reported_not_raised() -> None:
    state, events = _chain()
    broken_data = msgspec.structs.replace(events[1], data=[])  # type: ignore[arg-type]
    result = verify(state.id, [events[0], broken_data, *events[2:]], state)
    assert not result.ok and any("event 2: its data is not an object" in p for p in result.problems)
    renamed_first = msgspec.structs.replace(events[0], type="note_added")
    result = verify(state.id, [renamed_first, *events[1:]], state)
    assert not result.ok and any("event 1: cannot be applied" in p for p in result.problems)
