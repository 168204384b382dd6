"""Reports coming in: the Kafka ingest loop (:mod:`.ingest`), its wiring (:mod:`.runtime`) and
the dispatcher's triage of reports (:mod:`.triage`)."""
