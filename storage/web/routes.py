"""Declared API routes: one decorator validates input, shapes output and feeds OpenAPI.

A handler declares its body and query models; the wrapper parses and validates
them (400 for malformed JSON, 415 for a wrong content type, 422 for invalid
fields) before the handler runs, so handlers only ever see valid input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from storage.web.problems import Problem

Handler = Callable[..., Awaitable[Any]]
Guard = Callable[[web.Request], Awaitable[None]]


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

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


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
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint. `guard` runs before any input is read (e.g. to reject a
        caller without credentials before parsing what they sent)."""

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
        if op.query is not None:
            kwargs["query"] = validate(op.query, dict(request.query), "query")
        if op.body is not None:
            kwargs["body"] = await parse_body(request, op.body)
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


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    """The JSON body as `model`, or a problem saying exactly what is wrong with it.

    Parsed by pydantic straight from the bytes, so strict models still accept what JSON
    can only carry as strings (ISO 8601 datetimes).
    """
    optional = not any(field.is_required() for field in model.model_fields.values())
    if optional and not request.body_exists:
        return model.model_validate({})
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Send the body as application/json.")
    raw = await request.read()
    if not raw:
        raise Problem(400, "malformed-json", "The request body is empty.")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Problem(400, "malformed-json", "The body is not valid JSON.") from None
        raise validation_problem(exc, "body") from None


def validate(model: type[BaseModel], data: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, where) from None


def validation_problem(exc: ValidationError, where: str) -> Problem:
    """422 listing each invalid field; never echoes the submitted values (passwords)."""
    errors = [
        {
            "loc": ".".join([where, *(str(part) for part in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return Problem(
        422, "validation-error", f"{len(errors)} invalid field(s) in the {where}.", errors=errors
    )
