"""Adapters: with :mod:`incident.store`, the only modules that import vendor libraries
(aiokafka, twilio). Vendor errors are mapped at this boundary into the error tree of
:mod:`incident.core.errors` (``BrokerError``, ``CarrierError``)."""
