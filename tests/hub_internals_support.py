"""python-engineio and python-socketio internals broken as an upgrade could break them:
the private method still works, but no longer has the signature the hub's adapter was
written for, so the start-up check (`live.hub.internals`) must report it and the hub
must keep serving on the library's public path."""

from __future__ import annotations

import socketio
from engineio.async_socket import AsyncSocket


def break_engineio(monkeypatch) -> None:
    """`AsyncSocket.close(wait, abort, reason)` becomes `close(*args, **kwargs)`."""
    original = AsyncSocket.close

    async def close(self, *args, **kwargs):
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncSocket, "close", close)


def break_socketio(monkeypatch) -> None:
    """`AsyncServer._handle_event_internal(server, sid, ...)` becomes `(*args)`."""
    original = socketio.AsyncServer._handle_event_internal

    async def handle_event(self, *args):
        return await original(self, *args)

    monkeypatch.setattr(socketio.AsyncServer, "_handle_event_internal", handle_event)


BREAKS = {"python-engineio": break_engineio, "python-socketio": break_socketio}
