"""The OpenAPI 3.1 document, generated from the endpoint table the app is built from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from incident import __version__
from incident.api.endpoint import PATH_PARAM, PATH_PATTERNS, Endpoint
from incident.api.schemas import ErrorBody


def _path_schema(name: str) -> dict[str, str]:
    pattern = PATH_PATTERNS.get(name)
    return {"type": "string"} | ({"pattern": f"^{pattern}$"} if pattern else {})


_IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key and body from the same caller on this route within 24 h"
    " answers with the first answer (header Idempotent-Replayed: true) and changes nothing; another"
    " body is 422 idempotency_key_reused; while the first runs, 409 idempotency_key_in_progress; after"
    " a 5xx that may have been written, 409 idempotency_outcome_unknown.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$"},
}


_CONDITIONAL_PARAMS: list[dict[str, Any]] = [
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "ETags of copies the client holds: 304 when one is the current one",
        "schema": {"type": "string"},
    },
    {
        "name": "If-Modified-Since",
        "in": "header",
        "required": False,
        "description": "The Last-Modified of the client's copy: 304 when it is still the current one"
        " (If-None-Match, when given, decides instead)",
        "schema": {"type": "string"},
    },
]
_CACHE_HEADERS: dict[str, Any] = {
    "ETag": {"description": "strong ETag of the bytes", "schema": {"type": "string"}},
    "Last-Modified": {"description": "the newest change shown (an HTTP date)", "schema": {"type": "string"}},
    "Cache-Control": {"description": "public, with a short max-age", "schema": {"type": "string"}},
}


def _formats(types: list[Any], components: dict[str, Any]) -> None:
    """msgspec describes a ``datetime`` (and a date, time, UUID) as a bare string: add the
    ``format`` of every such field of every struct in the document."""
    seen: set[type[Any]] = set()

    def walk(t: msgspec.inspect.Type) -> str | None:
        """The format of ``t`` (unwrapping optional and annotated), and walk into structs."""
        if isinstance(t, msgspec.inspect.Metadata):
            return walk(t.type)
        if isinstance(t, msgspec.inspect.UnionType):
            found = [walk(u) for u in t.types]
            return next((f for f in found if f), None)
        if isinstance(t, msgspec.inspect.StructType):
            struct(t)
        elif isinstance(t, _COLLECTIONS):
            walk(t.item_type)
        elif isinstance(t, msgspec.inspect.DictType):
            walk(t.value_type)
        return _FORMATS.get(type(t))

    def struct(t: msgspec.inspect.StructType) -> None:
        if t.cls in seen:
            return
        seen.add(t.cls)
        props = components.get(t.cls.__name__, {}).get("properties", {})
        for f in t.fields:
            fmt = walk(f.type)
            if fmt and f.encode_name in props:
                prop = props[f.encode_name]
                for choice in prop.get("anyOf", [prop]):
                    if choice.get("type") == "string":
                        choice.setdefault("format", fmt)

    for t in msgspec.inspect.multi_type_info(types):
        walk(t)


_COLLECTIONS = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)
_FORMATS: dict[type[Any], str] = {
    msgspec.inspect.DateTimeType: "date-time",
    msgspec.inspect.DateType: "date",
    msgspec.inspect.TimeType: "time",
    msgspec.inspect.UUIDType: "uuid",
}


def _error(error_ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": error_ref}}}


_WHY = {
    400: "the request cannot be read (not JSON, a malformed Idempotency-Key, not a WebSocket upgrade)",
    401: "no token, or an unknown one",
    403: "the token's role may not do this (or, on webhooks, the signature is wrong)",
    404: "nothing of that id",
    409: "the current state forbids it, or the Idempotency-Key is in use",
    410: "it was there and is no more (an expired or used-up code, a removed sign-up)",
    413: "the body is larger than the limit",
    422: "a value breaks the schema or a rule (or the Idempotency-Key came with another body)",
    429: "too many requests: try again after Retry-After seconds",
    503: "the store is unavailable; try again",
}


_RETRY_AFTER: dict[str, Any] = {
    "description": "seconds to wait before trying again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def build_openapi(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    endpoints = list(endpoints)
    types: list[Any] = [ErrorBody]
    for e in endpoints:
        types += [t for t in (e.body, e.response) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    _formats(types, components)
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    error_ref = schema_of[id(ErrorBody)]

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "summary": e.summary,
            "operationId": f"{e.method.lower()}_{e.handler.__name__}",
            "tags": [e.tag],
        }
        params = [
            {"name": p, "in": "path", "required": True, "schema": _path_schema(p)}
            for p in PATH_PARAM.findall(e.path)
        ]
        for q in e.query:
            schema = {"type": "array", "items": q.schema} if q.repeated else q.schema
            params.append(
                {
                    "name": q.name,
                    "in": "query",
                    "required": q.required,
                    "description": q.description,
                    "schema": schema,
                }
            )
        if e.idempotent is not None:
            params.append(_IDEMPOTENCY_KEY)
        if e.conditional:
            params += _CONDITIONAL_PARAMS
        if params:
            op["parameters"] = params
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[id(e.body)]}},
            }
        success: dict[str, Any] = {"description": "success"}
        if e.response is not None:
            success["content"] = {e.content_type: {"schema": schema_of[id(e.response)]}}
        elif e.content_type != "application/json":
            success["content"] = {e.content_type: {"schema": {"type": "string"}}}
        for other in e.alternatives:
            success.setdefault("content", {})[other] = {"schema": {"type": "string"}}
        responses: dict[str, Any] = {str(e.status): success}
        if e.conditional:
            success["headers"] = _CACHE_HEADERS
            responses["304"] = {
                "description": "not modified: the client's copy is current",
                "headers": _CACHE_HEADERS,
            }
        for code in e.error_statuses():
            responses[str(code)] = _error(error_ref, _WHY.get(code, "error"))
            if code == 429:
                responses[str(code)]["headers"] = {"Retry-After": _RETRY_AFTER}
        op["responses"] = responses
        if e.roles is not None:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = sorted(r.value for r in e.roles)
        else:
            op["security"] = []
        paths.setdefault(e.path, {})[e.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Incident command and mass notification",
            "version": __version__,
            "description": "Each operation lists the roles it allows under x-roles. Lists that can grow"
            " are paged: ?limit= and ?cursor= (the previous page's next_cursor, null on the last page).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
