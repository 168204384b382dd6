"""Drills: scenario files (:mod:`.scenario`, pure) played against a running service by the
runner (:mod:`.runner`): timed Kafka reports and dispatcher actions, with progress a
dispatcher can follow and a summary of what the service did."""

from incident.drills.scenario import (
    Scenario,
    ScenarioError,
    find_scenario,
    load_scenario,
    loads_scenario,
    shipped_scenarios,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "find_scenario",
    "load_scenario",
    "loads_scenario",
    "shipped_scenarios",
]
