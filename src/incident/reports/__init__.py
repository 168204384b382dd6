"""Field reports, pure: the report schema and parser (:mod:`.model`) and the correlation of a
new report with the open incidents (:mod:`.correlation`). The flows that store and triage them
are in :mod:`incident.intake`."""
