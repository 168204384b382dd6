"""Incidents as a flow: :class:`.service.IncidentService` runs domain commands through the
store and publishes to the live hub (:mod:`.live`); an incident's area is resolved from its
parts (:mod:`.areas`) on a worker thread with a time limit (:mod:`.area_worker`)."""
