"""The one wrapper every client event goes through.

It validates the payload with the event's pydantic model, runs the handler and turns
whatever happens into an answer: `{"ok": true, ...}` on success, `{"ok": false,
"error": {"code", "message"}}` on a `Problem`, a validation error or a bug. Nothing is
raised into python-socketio, so a malformed or hostile event cannot take a socket
down. A client that sent no ack callback cannot receive the answer, so failures are
then emitted to it as an `error` event instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError

from live.hub.context import HubContext, Member
from storage.outages import unavailable
from storage.web import Input, Problem

log = logging.getLogger("streamcart.hub")

# Set per event by `socketio_private.AckAwareServer` (python-socketio does not tell a
# handler whether the client asked for an ack).
ACK_WANTED: ContextVar[bool] = ContextVar("ack_wanted", default=True)

Result = dict[str, Any] | None
Handler = Callable[[HubContext, Member, Any], Awaitable[Result]]


class Payload(Input):
    """Client payloads: unknown fields and type coercion are refused, as on the REST API."""


class Events:
    """A module's event handlers, declared with `@events.on(name, Model)` and attached to
    the server by `build_hub` (the way `ApiRoutes` collects HTTP routes)."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[type[Payload], Handler]] = {}

    def on(self, name: str, payload: type[Payload]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._handlers[name] = (payload, handler)
            return handler

        return register

    def attach(self, hub: HubContext) -> None:
        for name, (payload, handler) in self._handlers.items():
            hub.sio.on(name, handler=_guarded(hub, name, payload, handler))


def attach_unknown_event_handler(hub: HubContext) -> None:
    """Events nobody handles get an `unknown-event` error instead of silence."""

    async def unknown(event: Any, sid: str, *args: Any) -> dict[str, Any]:
        name = str(event)[:64]
        return await _refuse(hub, sid, name, error_body("unknown-event", f"No event {name!r}."))

    hub.sio.on("*", handler=unknown)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, **extra}


def _guarded(hub: HubContext, name: str, payload: type[Payload], handler: Handler):
    async def handle(sid: str, *args: Any) -> dict[str, Any]:
        try:
            member = await hub.member(sid)
            result = await handler(hub, member, _parse(payload, args))
            return {"ok": True, **(result or {})}
        except Exception as exc:
            problem = _as_problem(exc, name, sid)
        error = error_body(problem.code, problem.detail or problem.title, **problem.extra)
        return await _refuse(hub, sid, name, error)

    return handle


def _as_problem(exc: Exception, name: str, sid: str) -> Problem:
    """What to tell the client: the refusal, a backend outage (503), or a bug (logged)."""
    if isinstance(exc, Problem):
        return exc
    problem = unavailable(exc)
    if problem is None:
        log.exception("hub event %s failed", name, extra={"sid": sid})
        problem = Problem(500, "internal-error", "Something went wrong; try again.")
    return problem


def _parse(payload: type[Payload], args: tuple[Any, ...]) -> Payload:
    if len(args) != 1:
        raise Problem(422, "invalid-payload", "Send exactly one JSON object.")
    try:
        return payload.model_validate(args[0])
    except ValidationError as exc:
        # Field names and reasons only: the submitted values are never echoed back.
        problems = [
            (".".join(str(part) for part in error["loc"]) or "payload", error["msg"])
            for error in exc.errors(include_input=False, include_url=False)
        ]
        message = "; ".join(f"{where}: {why}" for where, why in problems)
        raise Problem(
            422, "invalid-payload", message, fields=[where for where, _ in problems]
        ) from None


async def _refuse(hub: HubContext, sid: str, event: str, error: dict[str, Any]) -> dict[str, Any]:
    if not ACK_WANTED.get():
        await hub.sio.emit("error", {"event": event, **error}, to=sid)
    return {"ok": False, "error": error}
