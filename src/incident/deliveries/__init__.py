"""Deliveries, exactly once: the delivery state machine and the SQL state lists built from it
(:mod:`.states`), and the rows the store keeps of notices and deliveries (:mod:`.records`).
Pure; below the store, which builds every state list it uses from here."""
