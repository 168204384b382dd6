"""``Idempotency-Key`` on the POSTs that create or change something.

The same key and body from the same caller on the same route within the key's lifetime (24 h)
answers with the first answer (same status, same body bytes) and runs nothing; another body is
422 ``idempotency_key_reused``; a retry while the first still runs is 409
``idempotency_key_in_progress``. 2xx and 4xx answers are final and stored with the key.

A 5xx is not final, and it does not prove that nothing was written (a commit whose answer was
lost, an error after the write). The record then becomes ``unknown`` and keeps its *guard*: a
value read before the request ran that any write of the route moves (the incident's last
sequence number; for a declaration, the incident counter). A retry with the key runs again only
when the guard proves that nothing was written (or the route's write refuses a repeat by
itself); else it is 409 ``idempotency_outcome_unknown`` and the client must look at the
timeline before sending the change again under a new key. So a retry never doubles a write.

A route that writes once (one append, a declaration) and whose write the store refused with
``store_unavailable`` wrote nothing: the store answers that only when its transaction did not
commit (a COMMIT cut off is checked on the server; if that cannot be learnt the code is
``store_outcome_unknown``). Its record becomes ``failed`` and a retry runs whatever the guard
says, so a busy incident, whose last sequence number moves all the time, does not turn every
database blip into a 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import timedelta

from aiohttp import web
from aiohttp.typedefs import Middleware

from incident.api.endpoint import ONE_WRITE, Handler, Idempotency, raw_body
from incident.api.middleware import error_response
from incident.core.clock import isoformat
from incident.core.errors import Conflict, IncidentError, InvalidInput, MalformedRequest, StoreError
from incident.keys import CLOCK, ENDPOINTS, PRINCIPAL, SETTINGS, STORE
from incident.store.ports import IdempotencyChange, IdempotencyRecord, incident_counter

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: Set on an answer replayed from a key's first answer.
REPLAYED = "Idempotent-Replayed"
TTL = timedelta(hours=24)
_PURGE_EVERY = timedelta(hours=1)
_MAX_KEY = 200


class KeyReused(InvalidInput):
    code = "idempotency_key_reused"
    status = 422


class KeyInProgress(Conflict):
    code = "idempotency_key_in_progress"


class OutcomeUnknown(Conflict):
    code = "idempotency_outcome_unknown"


def valid_key(key: str) -> bool:
    return 1 <= len(key) <= _MAX_KEY and all(" " <= c <= "~" for c in key)


async def guard_of(request: web.Request, how: Idempotency) -> str | None:
    """The value the route's writes move, read now (None: the write refuses a repeat itself)."""
    store = request.app[STORE]
    if how in (Idempotency.incident, Idempotency.one_append):
        incident = await store.get_incident(request.match_info["incident_id"])
        return f"seq={incident.last_seq}" if incident is not None else "seq=none"
    if how is Idempotency.new_incident:
        name = incident_counter(request.app[CLOCK].now().year)
        return f"{name}={await store.counter_value(name)}"
    return None


class _Lease:
    """The running request's hold on its record: refreshed while it runs, so a retry can tell
    a request still running from one that died with its instance."""

    def __init__(self, store_key: tuple[str, str], updated_at: str) -> None:
        self.scope, self.key = store_key
        self.updated_at = updated_at


def idempotency_middleware() -> Middleware:
    last_purge = ""

    async def purge(request: web.Request, now: str, expired_before: str) -> None:
        nonlocal last_purge
        if last_purge and last_purge > isoformat(request.app[CLOCK].now() - _PURGE_EVERY):
            return
        last_purge = now
        try:
            removed = await request.app[STORE].purge_idempotency_keys(expired_before)
        except StoreError as err:  # the next purge tries again; expired keys are refused lazily
            log.warning("expired idempotency keys not purged: %s", err.message)
            return
        if removed:
            log.info("%d expired idempotency keys purged", removed)

    @web.middleware
    async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = request.app[ENDPOINTS].get(request.match_info.route)
        key = request.headers.get(HEADER)
        if endpoint is None or endpoint.idempotent is None or key is None:
            return await handler(request)
        if not valid_key(key):
            raise MalformedRequest(
                f"{HEADER} must be 1 to {_MAX_KEY} printable ASCII characters", code="invalid_idempotency_key"
            )
        raw = await raw_body(request)
        clock = request.app[CLOCK]
        now_at = clock.now()
        now, expired_before = isoformat(now_at), isoformat(now_at - TTL)
        await purge(request, now, expired_before)
        record = IdempotencyRecord(
            scope=f"{request[PRINCIPAL].name} {request.method} {request.path}",
            key=key,
            body_sha256=hashlib.sha256(raw).hexdigest(),
            guard=await guard_of(request, endpoint.idempotent),
            created_at=now,
            updated_at=now,
        )
        lease = await _take(request, record, endpoint.idempotent, expired_before)
        if isinstance(lease, web.Response):
            return lease
        return await _run(request, handler, lease, endpoint.idempotent)

    return idempotency


async def _take(
    request: web.Request, record: IdempotencyRecord, how: Idempotency, expired_before: str
) -> _Lease | web.Response:
    """Claim the key for this request, or answer from (or about) its record."""
    store = request.app[STORE]
    found = await store.claim_idempotency_key(record, expired_before)
    if found is None:
        return _Lease((record.scope, record.key), record.updated_at)
    if found.body_sha256 != record.body_sha256:
        raise KeyReused(f"{HEADER} {record.key!r} was sent with another body: a new request needs a new key")
    if found.state == "done" and found.status is not None:
        return web.Response(
            body=(found.response or "").encode(),
            status=found.status,
            content_type="application/json",
            headers={REPLAYED: "true"},
        )
    lease_s = request.app[SETTINGS].http.idempotency_lease_s
    stale = isoformat(request.app[CLOCK].now() - timedelta(seconds=lease_s))
    if found.state == "pending" and found.updated_at > stale:
        raise KeyInProgress(f"a request with {HEADER} {record.key!r} is still running; try again shortly")
    # The first request failed (5xx) or died with its instance: did it write?
    # ``failed``: the store refused the one write cleanly, so nothing was written.
    if found.state != "failed" and how is not Idempotency.refuses_repeat and found.guard != record.guard:
        raise OutcomeUnknown(
            f"the first request with {HEADER} {record.key!r} failed after it may have been written"
            f" ({found.guard} then, {record.guard} now): look at the timeline, and send it again"
            " under a new key only if it is not there"
        )
    retake = IdempotencyChange(state="pending", updated_at=record.updated_at, guard=record.guard)
    if not await store.update_idempotency_key(record.scope, record.key, found.updated_at, retake):
        raise KeyInProgress(f"a request with {HEADER} {record.key!r} is still running; try again shortly")
    return _Lease((record.scope, record.key), record.updated_at)


async def _run(request: web.Request, handler: Handler, lease: _Lease, how: Idempotency) -> web.StreamResponse:
    """Run the request holding the lease; a final answer is stored with the key."""
    ended = asyncio.Event()
    heartbeat = asyncio.create_task(_keep(request, lease, ended), name="idempotency-lease")
    response: web.StreamResponse | None = None
    clean = False
    try:
        try:
            response = await handler(request)
        except IncidentError as err:
            if err.status >= 500:
                clean = how in ONE_WRITE and isinstance(err, StoreError) and err.code == StoreError.code
                raise
            response = error_response(err.status, err.code, err.message)
    finally:
        # Stopped, not cancelled: a refresh already handed to the store may land even if its
        # caller is cancelled, and the answer is stored against the hold's last refresh.
        ended.set()
        await heartbeat
        final = response is not None and response.status < 500 and isinstance(response, web.Response)
        await _settle(request, lease, response if final else None, clean=clean)
    assert response is not None  # the handler answered, or its error went on up
    return response


async def _settle(
    request: web.Request, lease: _Lease, response: web.StreamResponse | None, *, clean: bool = False
) -> None:
    now = isoformat(request.app[CLOCK].now())
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        change = IdempotencyChange(
            state="done", updated_at=now, status=response.status, response=response.body.decode()
        )
    else:
        change = IdempotencyChange(state="failed" if clean else "unknown", updated_at=now)
    try:
        await request.app[STORE].update_idempotency_key(lease.scope, lease.key, lease.updated_at, change)
    except StoreError as err:
        # The record stays pending; once its lease runs out a retry treats it as unknown.
        log.warning("idempotency key not settled: %s", err.message)


async def _keep(request: web.Request, lease: _Lease, ended: asyncio.Event) -> None:
    every = request.app[SETTINGS].http.idempotency_lease_s / 4
    store, clock = request.app[STORE], request.app[CLOCK]
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await ended.wait()
        if ended.is_set():
            return
        now = isoformat(clock.now())
        with contextlib.suppress(StoreError):
            change = IdempotencyChange(state="pending", updated_at=now)
            if await store.update_idempotency_key(lease.scope, lease.key, lease.updated_at, change):
                lease.updated_at = now
