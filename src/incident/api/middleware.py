"""Middlewares: JSON errors, request metrics, and bearer-token roles per endpoint."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from incident.api.endpoint import Endpoint, Handler, check_query, json_response
from incident.core.auth import Principal, TokenRegistry
from incident.core.errors import Forbidden, IncidentError, TooManyRequests, Unauthenticated
from incident.keys import ENDPOINTS, METRICS, PRINCIPAL, TOKENS

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize(tokens: TokenRegistry, token: str | None, endpoint: Endpoint) -> Principal:
    if token is None:
        raise Unauthenticated("sign in: send 'Authorization: Bearer <token>'")
    principal = tokens.authenticate(token)
    if principal is None:
        raise Unauthenticated("unknown token: ask an admin for a valid one")
    if endpoint.roles is not None and principal.role not in endpoint.roles:
        allowed = ", ".join(sorted(r.value for r in endpoint.roles))
        raise Forbidden(f"the {principal.role.value} role cannot do this (allowed: {allowed})")
    return principal


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    template = route.resource.canonical if route.resource is not None else "unmatched"
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except IncidentError as err:
        status = err.status
        if status >= 500:
            log.error("request failed: %s %s: %s", request.method, template, err.message)
        response = error_response(status, err.code, err.message)
        if isinstance(err, TooManyRequests):
            response.headers["Retry-After"] = str(err.retry_after)
        return response
    except web.HTTPException as err:
        status = err.status
        if status < 400:
            raise
        code = _HTTP_CODES.get(status, "http_error")
        message = err.reason
        if status == 404:
            message = f"no such endpoint: {request.method} {request.path} (see /api/openapi.json)"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        response = error_response(status, code, message)
        if isinstance(err, web.HTTPMethodNotAllowed):  # RFC 9110: a 405 names what is allowed
            allowed = set(err.allowed_methods) | ({"HEAD"} if "GET" in err.allowed_methods else set())
            response.headers["Allow"] = ", ".join(sorted(allowed))
        return response
    except Exception:
        log.exception("unexpected error on %s %s", request.method, template)
        return error_response(500, "internal", "internal error; it has been logged")
    finally:
        metrics.http_requests.labels(request.method, template, str(status)).inc()
        metrics.http_latency.labels(template).observe(time.perf_counter() - started)


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The caller's role, then the declared query parameters, before the handler runs."""
    endpoint = request.app[ENDPOINTS].get(request.match_info.route)
    if endpoint is not None:
        if endpoint.roles is not None and not endpoint.self_auth:
            request[PRINCIPAL] = authorize(request.app[TOKENS], bearer_token(request), endpoint)
        check_query(endpoint, request)
    return await handler(request)
