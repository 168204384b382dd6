"""The one error hierarchy of the service.

    IncidentError                 base; ``code`` is stable and machine-readable
    ├── ConfigError               settings or a config file are wrong; start-up stops
    │   └── PlaybookError         playbook files break the format; ``problems`` lists file:line: ...
    ├── InvalidInput              a request or file breaks a rule (HTTP 400/413/422)
    │   ├── MalformedRequest      not JSON at all (400)
    │   ├── geo.GeoError          a geometry, zone, pipe or file the geo package refuses
    │   ├── AreaTooComplex        an area took longer to compute than allowed (422)
    │   └── PayloadTooLarge
    ├── AuthError
    │   ├── Unauthenticated       no or unknown token (401)
    │   └── Forbidden             the token's role may not do this (403)
    │       └── NotOwner          a dispatcher acting on someone else's incident
    ├── NotFound                  no such incident, report, ... (404)
    │   └── Gone                  it was there and is no more: an expired or used-up code (410)
    ├── TooManyRequests           a rate limit of a public route (429, ``retry_after`` seconds)
    ├── Conflict                  the request fights the current state (409)
    │   └── IllegalTransition
    ├── LeaseLost                 an instance's lease ran out under it (playbook evaluation, 409)
    ├── IntegrityError            a timeline chain does not verify
    ├── StoreError                the database failed; ``retryable`` says whether to try again
    ├── BrokerError               Kafka failed (aiokafka's errors, mapped in adapters.kafka)
    ├── CarrierError              Twilio or the push gateway refused or did not answer
    │                             (mapped in adapters.carriers); ``retryable``, ``outcome_unknown``
    └── Busy                      no worker free to start the work in time (503, retry)

Vendor errors (sqlite3, asyncpg, aiokafka, twilio) are converted to these at the adapter
boundary with ``raise ... from err``; nothing above the adapters catches a vendor type.
"""

from __future__ import annotations


class IncidentError(Exception):
    """Base of every error the service raises on purpose."""

    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(IncidentError):
    code = "config_invalid"


class PlaybookError(ConfigError):
    """One or more playbook files are wrong; each problem reads ``FILE:LINE: PATH: message``."""

    code = "playbook_invalid"

    def __init__(self, problems: list[str] | tuple[str, ...], *, code: str | None = None) -> None:
        super().__init__("\n".join(problems), code=code)
        self.problems = tuple(problems)


class InvalidInput(IncidentError):
    code = "invalid_request"
    status = 422


class MalformedRequest(InvalidInput):
    """The body cannot even be parsed (not JSON, empty)."""

    code = "malformed_json"
    status = 400


class BadQuery(InvalidInput):
    """A query parameter of a public route that is missing, not a number, or out of range."""

    code = "bad_query"
    status = 400


class AreaTooComplex(InvalidInput):
    code = "area_too_complex"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    status = 413


class AuthError(IncidentError):
    code = "auth"
    status = 401


class Unauthenticated(AuthError):
    code = "unauthenticated"
    status = 401


class Forbidden(AuthError):
    code = "forbidden"
    status = 403


class NotFound(IncidentError):
    code = "not_found"
    status = 404


class Gone(NotFound):
    code = "gone"
    status = 410


class TooManyRequests(IncidentError):
    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


class RateLimited(TooManyRequests):
    """Too many requests from one client address (public routes); ``Retry-After`` says when."""

    code = "rate_limited"


class Conflict(IncidentError):
    code = "conflict"
    status = 409


class IllegalTransition(Conflict):
    code = "illegal_transition"


class NotOwner(Forbidden):
    code = "not_owner"


class IntegrityError(IncidentError):
    code = "integrity"
    status = 500


class StoreError(IncidentError):
    code = "store_unavailable"
    status = 503

    def __init__(self, message: str, *, retryable: bool = True, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable

    @property
    def outcome_unknown(self) -> bool:
        """A write's COMMIT was cut off and whether it took effect could not be learnt."""
        return self.code == OUTCOME_UNKNOWN


class BrokerError(IncidentError):
    code = "broker_unavailable"
    status = 503


class CarrierError(IncidentError):
    code = "carrier_error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        carrier_code: int | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.carrier_code = carrier_code
        self.retry_after = retry_after
        #: The request may have been taken (no answer came): ask the carrier before resending.
        self.outcome_unknown = outcome_unknown


class LeaseLost(IncidentError):
    code = "lease_lost"
    status = 409


class Busy(IncidentError):
    code = "busy"
    status = 503


#: The code of a StoreError answered when a write's COMMIT was in flight as the connection died
#: and whether it took effect could not be learnt within the retry budget (never when it is
#: known to have failed).
OUTCOME_UNKNOWN = "store_outcome_unknown"
