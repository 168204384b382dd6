from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from incident.core import domain
from incident.core.domain import Declaration, Incident, Kind, Role, Severity, Status, Utility
from incident.core.errors import Conflict, IllegalTransition, NotOwner
from incident.core.timeline import seal

AT = datetime(2026, 11, 22, 8, 15, tzinfo=UTC)
DECL = Declaration(kind=Kind.gas_leak, utility=Utility.gas, title="Smell of gas", severity=Severity.critical)


def _incident(status: Status = Status.declared, owner: str | None = "alice") -> Incident:
    state, _ = seal("INC-2026-000001", None, domain.declare(DECL, "alice", owner=owner), AT)
    if status is not Status.declared:
        state = msgspec_replace(state, status=status)
    return state


def msgspec_replace(state: Incident, **changes: object) -> Incident:
    import msgspec

    return msgspec.structs.replace(state, **changes)


def test_declaration_opens_a_declared_incident_owned_by_its_declarer() -> None:
    state = _incident()
    assert state.status == Status.declared and state.owner == "alice" and state.kind == Kind.gas_leak
    assert state.last_seq == 1 and state.declared_at == state.updated_at


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_status_changes_follow_the_lifecycle_table(src: Status, dst: Status) -> None:
    state = _incident(src)
    if dst in domain.TRANSITIONS[src]:
        [draft] = domain.change_status(state, dst, "alice", None)
        assert draft.data == {"from": src.value, "to": dst.value}
    else:
        with pytest.raises(IllegalTransition):
            domain.change_status(state, dst, "alice", None)


def test_the_lifecycle_can_reach_closed_from_declared_and_nothing_leaves_it() -> None:
    assert Status.closed in domain.TRANSITIONS[Status.active]
    assert not domain.TRANSITIONS[Status.closed] and not domain.TRANSITIONS[Status.cancelled]
    state = _incident()
    for to in (Status.active, Status.restoring, Status.monitoring, Status.closed):
        state, _ = seal(state.id, state, domain.change_status(state, to, "alice", None), AT)
    assert state.status == Status.closed and state.closed_at is not None and not state.is_open


@pytest.mark.parametrize(
    ("owner", "actor", "role", "to", "allowed"),
    [
        ("alice", "alice", Role.dispatcher, "bob", True),
        ("alice", "bob", Role.dispatcher, "bob", False),
        ("alice", "carol", Role.command, "bob", True),
        ("alice", "root", Role.admin, "bob", True),
        (None, "bob", Role.dispatcher, "bob", True),  # nobody owns it: a dispatcher takes it
        (None, "bob", Role.dispatcher, "dave", False),
    ],
)
def test_hand_over_rules(owner: str | None, actor: str, role: Role, to: str, allowed: bool) -> None:
    state = _incident(owner=owner)
    if allowed:
        [draft] = domain.hand_over(state, to, actor, role, "shift change")
        assert draft.data == {"from": owner, "to": to, "reason": "shift change"}
        after, _ = seal(state.id, state, [draft], AT)
        assert after.owner == to
    else:
        with pytest.raises(NotOwner):
            domain.hand_over(state, to, actor, role, None)


def test_closed_incidents_take_no_notes_or_hand_overs() -> None:
    state = _incident(Status.closed)
    with pytest.raises(IllegalTransition):
        domain.add_note(state, "late", "alice")
    with pytest.raises(IllegalTransition):
        domain.hand_over(state, "bob", "alice", Role.dispatcher, None)


def test_unknown_event_types_only_move_the_head() -> None:
    state = _incident()
    after, [event] = seal(state.id, state, [domain.EventDraft(type="future_thing", actor="x", data={})], AT)
    assert after.last_seq == 2 and after.head_hash == event.hash
    assert msgspec_replace(after, last_seq=1, head_hash=state.head_hash) == state


def test_describe_is_plain_language() -> None:
    state = _incident()
    _, [event] = seal(
        state.id, state, domain.change_status(state, Status.active, "alice", "crew on site"), AT
    )
    assert domain.describe(event) == "status declared -> active (crew on site)"


def test_a_dispatcher_makes_an_incident_public_and_internal_again() -> None:
    state = _incident()
    assert state.public is False
    public, [event] = seal(state.id, state, domain.set_public(state, True, "alice", "crews on site"), AT)
    assert public.public is True and event.type == "made_public"
    assert domain.describe(event).startswith("made public (by a dispatcher)")
    with pytest.raises(IllegalTransition, match="already public"):
        domain.set_public(public, True, "alice", None)
    internal, [event] = seal(state.id, public, domain.set_public(public, False, "alice", None), AT)
    assert internal.public is False and event.type == "made_internal"
    with pytest.raises(IllegalTransition):
        domain.set_public(_incident(Status.closed), True, "alice", None)


def test_a_drill_is_never_public() -> None:
    drill = msgspec_replace(_incident(), drill=True)
    with pytest.raises(Conflict, match="drill") as err:
        domain.set_public(drill, True, "alice", None)
    assert err.value.code == "drill_not_public" and err.value.status == 409
    assert domain.public_by_notice(drill, "INC-2026-000001-N1", "alice") == []


def test_an_approved_notice_makes_the_incident_public_once() -> None:
    state = _incident()
    drafts = domain.public_by_notice(state, "INC-2026-000001-N1", "alice")
    public, [event] = seal(state.id, state, drafts, AT)
    assert public.public and event.data == {"notice_id": "INC-2026-000001-N1"}
    assert "notice INC-2026-000001-N1 to households approved" in domain.describe(event)
    assert domain.public_by_notice(public, "INC-2026-000001-N2", "alice") == []
