"""OpenAPI 3.1 built from the declared operations and their pydantic models.

Nothing is written by hand that the code already knows: each operation's responses
are its `errors` plus every status the route wrapper may answer on its own
(`Operation.wrapper_statuses`), plus the outage middleware's 503 on every operation that
reaches a backend (`Operation.reaches_backends`), and its security scheme is the one its
route declares, so the document cannot drift from what the server does.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from storage.web.routes import PATH_PARAM, Operation

REF = "#/components/schemas/{model}"
DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem document.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "Stable machine-readable error code."},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "code"],
}

DEPENDENCY_UNAVAILABLE_RESPONSE = {
    "description": "Service Unavailable: `dependency-unavailable` when the database, cache "
    "or event bus cannot be reached (the problem's `backend` says which); try again after "
    "`Retry-After` seconds. An operation's description names any other reason it answers "
    "503 for.",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
}


def build_spec(
    operations: Iterable[Operation], *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    operations = list(operations)
    schemas, refs = _component_schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = PATH_PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, schemas, refs)
    bodies = {op.body for op in operations}
    for op in operations:  # query models are documented as parameters, not as schemas
        if op.query is not None and op.query not in bodies:
            schemas.pop(_name(refs[(op.query, "validation")]), None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {DEPENDENCY_UNAVAILABLE: DEPENDENCY_UNAVAILABLE_RESPONSE},
            "securitySchemes": {
                op.scheme.name: dict(op.scheme.spec) for op in operations if op.scheme
            },
        },
    }


def _component_schemas(operations: list[Operation]):
    models: list[tuple[type[BaseModel], str]] = []
    for op in operations:
        for model, mode in (
            (op.body, "validation"),
            (op.query, "validation"),
            (op.response, "serialization"),
        ):
            if model is not None and (model, mode) not in models:
                models.append((model, mode))
    if not models:
        return {}, {}
    refs, top = models_json_schema(models, ref_template=REF)
    return dict(top.get("$defs", {})), refs


def _name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[1]


def _operation(op: Operation, schemas, refs) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": _parameters(op, schemas, refs),
        "responses": _responses(op, refs),
    }
    if (op.handler.__doc__ or "").strip():
        doc["description"] = op.handler.__doc__.strip()
    if op.scheme is not None:
        doc["security"] = [{op.scheme.name: []}]
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {op.request_media_type: {"schema": refs[(op.body, "validation")]}},
        }
    elif op.request_media_type != "application/json":
        doc["requestBody"] = {
            "required": True,
            "content": {op.request_media_type: {"schema": {"type": "string"}}},
        }
    return doc


def _parameters(op: Operation, schemas, refs) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in op.path_params
    ]
    if op.query is not None:
        schema = schemas[_name(refs[(op.query, "validation")])]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _responses(op: Operation, refs) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.response is not None:
        ok["content"] = {op.response_media_type: {"schema": refs[(op.response, "serialization")]}}
    elif op.response_media_type != "application/json":
        ok["content"] = {op.response_media_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status in sorted((set(op.errors) | op.wrapper_statuses) - {op.status}):
        responses[str(status)] = {"description": HTTPStatus(status).phrase}
        if status != HTTPStatus.NO_CONTENT:
            responses[str(status)]["content"] = {
                "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
            }
    if op.reaches_backends:
        responses["503"] = {"$ref": f"#/components/responses/{DEPENDENCY_UNAVAILABLE}"}
    return dict(sorted(responses.items()))
