"""The OpenAPI 3.1 document, generated from the endpoint table the app is built from."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from incident import __version__
from incident.api.endpoint import Endpoint
from incident.api.schemas import ErrorBody

_PARAM = re.compile(r"\{(\w+)\}")
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


def build_openapi(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    endpoints = list(endpoints)
    types: list[Any] = [ErrorBody]
    for e in endpoints:
        types += [t for t in (e.body, e.response) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
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
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in _PARAM.findall(e.path)
        ]
        for q in e.query:
            schema = {"type": "array", "items": q.schema} if q.repeated else q.schema
            params.append(
                {
                    "name": q.name,
                    "in": "query",
                    "required": False,
                    "description": q.description,
                    "schema": schema,
                }
            )
        if e.idempotent is not None:
            params.append(_IDEMPOTENCY_KEY)
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
        responses: dict[str, Any] = {str(e.status): success}
        errors = e.errors if e.roles is not None else tuple(c for c in e.errors if c not in (401, 403))
        for code in errors:
            responses[str(code)] = {
                "description": "error",
                "content": {"application/json": {"schema": error_ref}},
            }
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
            "description": "Each operation lists the roles it allows under x-roles.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
