"""Declared API routes: one decorator validates input, shapes output and feeds OpenAPI.

A handler declares its body and query models; the wrapper parses and validates
them (400 for malformed JSON, 413 for a body over the size limit, 415 for a wrong
content type, 422 for invalid fields or NUL in any input) before the handler runs,
so handlers only ever see valid input. `Operation.wrapper_statuses` says which of
those an operation can answer, so its OpenAPI document lists them. Every operation may
also answer 503 `dependency-unavailable` (the outage middleware's answer when the
database, cache or bus is down) unless it is declared with `reaches_backends=False`.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from storage.web.inputs import pairs, parse_body, refuse_nul, validate

Handler = Callable[..., Awaitable[Any]]
Guard = Callable[[web.Request], Awaitable[None]]
PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class SecurityScheme:
    """How a caller proves who they are, as an OpenAPI security scheme named `name`."""

    name: str
    spec: Mapping[str, Any] = field(hash=False, compare=False)


BEARER = SecurityScheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})


@dataclass(frozen=True)
class Operation:
    """Everything known about one endpoint: enough to serve it and to document it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tags: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = False
    errors: tuple[int, ...] = ()
    request_media_type: str = "application/json"
    response_media_type: str = "application/json"
    guard: Guard | None = None
    security: SecurityScheme | None = None
    allow_nul: bool = False
    reaches_backends: bool = True

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return PATH_PARAM.findall(self.path)

    @property
    def scheme(self) -> SecurityScheme | None:
        """What authenticates a caller: `security`, else bearer tokens when `auth`."""
        return self.security or (BEARER if self.auth else None)

    @property
    def wrapper_statuses(self) -> frozenset[int]:
        """Every status the wrapper itself may answer, whatever the handler does."""
        statuses: set[int] = set()
        if self.body is not None:
            statuses |= {400, 413, 415, 422}
        if self.query is not None or (self.path_params and not self.allow_nul):
            statuses.add(422)
        if self.scheme is not None:
            statuses.add(401)
        if self.status == 200 and _may_return_none(self.handler):
            statuses.add(204)
        return frozenset(statuses)


def _may_return_none(handler: Handler) -> bool:
    """A handler annotated `-> Model | None` may answer 204 (the wrapper's rule for None)."""
    returned = typing.get_type_hints(handler).get("return")
    if typing.get_origin(returned) in (typing.Union, types.UnionType):
        return type(None) in typing.get_args(returned)
    return returned is type(None)


class ApiRoutes:
    """A collection of declared operations that a package hands to the composition root."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: Sequence[str] = (),
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool = False,
        errors: Sequence[int] = (),
        request_media_type: str = "application/json",
        response_media_type: str = "application/json",
        guard: Guard | None = None,
        security: SecurityScheme | None = None,
        allow_nul: bool = False,
        reaches_backends: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint. `guard` runs before any input is read (e.g. to reject a
        caller without credentials before parsing what they sent); `security` documents
        what it checks. `allow_nul` lets NUL characters through to a handler that cleans
        them itself (NUL is refused with 422 everywhere else). `reaches_backends=False`
        says the endpoint never waits on the database, cache or bus (liveness, settings,
        in-process peers), so it is not documented as answering 503 in an outage."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    handler=handler,
                    summary=summary,
                    tags=tuple(tags),
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    auth=auth,
                    errors=tuple(errors),
                    request_media_type=request_media_type,
                    response_media_type=response_media_type,
                    guard=guard,
                    security=security,
                    allow_nul=allow_nul,
                    reaches_backends=reaches_backends,
                )
            )
            return handler

        return register

    def add_to(self, app: web.Application, *, authenticate: Guard | None = None) -> None:
        """Serve the operations; `authenticate` guards every `auth=True` one that has no
        guard of its own, so a caller without credentials learns nothing about the input."""
        for op in self.operations:
            if op.auth and op.guard is None and authenticate is not None:
                op = replace(op, guard=authenticate)
            app.router.add_route(op.method, op.path, _serve(op), name=op.operation_id)


def _serve(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if op.guard is not None:
            await op.guard(request)
        if not op.allow_nul:
            refuse_nul("path", pairs(request.match_info.items()))
        if op.query is not None:
            if not op.allow_nul:
                refuse_nul("query", pairs(request.query.items()))
            kwargs["query"] = validate(op.query, dict(request.query), "query")
        if op.body is not None:
            kwargs["body"] = await parse_body(request, op.body, allow_nul=op.allow_nul)
        result = await op.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, BaseModel):
            return web.Response(
                status=op.status,
                body=result.model_dump_json(by_alias=True),
                content_type="application/json",
            )
        if result is None:
            return web.Response(status=204 if op.status == 200 else op.status)
        return web.json_response(result, status=op.status)

    endpoint.__name__ = op.operation_id
    return endpoint
