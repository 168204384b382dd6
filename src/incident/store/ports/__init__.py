"""The store interface, one port (a Protocol) per aggregate; :class:`Store` is all of them.
Two implementations pass one contract suite (split the same way): SQLite and PostgreSQL.

Every change goes through :meth:`Store.append` (or :meth:`Store.create_incident`): the store
reads the current state inside a transaction, hands it to a pure ``decide`` function that
returns event drafts or raises, seals the drafts into the hash chain and writes events and
projection together. So lifecycle rules are checked against the state they change, and a
failed request leaves nothing half-written.
"""

from __future__ import annotations

from typing import Protocol

from incident.store.ports.deliveries import DeliveryPort
from incident.store.ports.enrolments import Admission, Enrolment, EnrolmentLimits, EnrolmentPort
from incident.store.ports.households import HouseholdPort, HouseholdUpsert
from incident.store.ports.idempotency import IdempotencyChange, IdempotencyPort, IdempotencyRecord
from incident.store.ports.incidents import (
    Appended,
    AppendTo,
    Decider,
    IncidentPort,
    NewIncident,
    Opener,
    PlanResult,
    PlanStep,
    PutNotice,
    SetReport,
)
from incident.store.ports.lifecycle import LifecyclePort, incident_counter
from incident.store.ports.notices import NoticePort
from incident.store.ports.opt_outs import OptOutPort
from incident.store.ports.reports import IncomingReport, IngestResult, Planner, ReportPort
from incident.store.ports.timers import DueTimer, TimerPort


class Store(
    LifecyclePort,
    IncidentPort,
    ReportPort,
    HouseholdPort,
    NoticePort,
    DeliveryPort,
    OptOutPort,
    TimerPort,
    IdempotencyPort,
    EnrolmentPort,
    Protocol,
):
    """The whole store: what both engines implement and the wiring hands around. Flows that
    need one aggregate may name its port."""


__all__ = [
    "Admission",
    "AppendTo",
    "Appended",
    "Decider",
    "DeliveryPort",
    "DueTimer",
    "Enrolment",
    "EnrolmentLimits",
    "EnrolmentPort",
    "HouseholdPort",
    "HouseholdUpsert",
    "IdempotencyChange",
    "IdempotencyPort",
    "IdempotencyRecord",
    "IncidentPort",
    "IncomingReport",
    "IngestResult",
    "LifecyclePort",
    "NewIncident",
    "NoticePort",
    "Opener",
    "OptOutPort",
    "PlanResult",
    "PlanStep",
    "Planner",
    "PutNotice",
    "ReportPort",
    "SetReport",
    "Store",
    "TimerPort",
    "incident_counter",
]
