"""Every use of python-engineio's internals, in one place, for an exact version.

The hub needs three things python-engineio offers no public way to do: find the TCP
transport under a websocket session (the broadcast fast path writes frames to it),
tell whether a session's writer task is idle, and end a session without waiting for
its client to fetch the close packet. All of it is here, so an upgrade is reviewed in
one file: `missing()` looks for each internal at start-up (`live.hub.internals`), and
when one is gone the hub leaves these functions unused and takes the public path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
from aiohttp import web
from engineio import packet
from engineio.async_socket import AsyncSocket

DISTRIBUTION = "python-engineio"
WRITTEN_FOR = "4.15.1"  # pinned exactly in pyproject.toml

# Serve one websocket session: given its Engine.IO session id, its upgrade request and a
# function that runs python-engineio's handler on a request, run that handler.
AroundWebsocket = Callable[
    [str, web.Request, Callable[[web.Request], Awaitable[Any]]], Awaitable[Any]
]

_SOCKET_STATE = ("queue", "upgraded", "upgrading", "closing", "closed")
_CLOSE_PARAMETERS = {"wait", "abort", "reason"}
_DRIVER_PARAMETERS = ["self", "handler", "server"]


def missing() -> list[str]:
    """The internals used here that this python-engineio lacks (none for WRITTEN_FOR)."""
    probe = engineio.AsyncServer(async_mode="aiohttp")
    driver = getattr(probe, "_async", {}).get("websocket")
    gaps = []
    if driver is None or _parameters(driver.__init__) != _DRIVER_PARAMETERS:
        gaps.append("AsyncServer._async['websocket'](handler, server)")
    if not isinstance(getattr(probe, "sockets", None), dict):
        gaps.append("AsyncServer.sockets")
    if not hasattr(getattr(probe, "reason", None), "TRANSPORT_ERROR"):
        gaps.append("AsyncServer.reason.TRANSPORT_ERROR")
    socket = AsyncSocket(probe, "probe")
    gaps += [f"AsyncSocket.{name}" for name in _SOCKET_STATE if not hasattr(socket, name)]
    if not hasattr(getattr(socket, "queue", None), "_getters"):
        gaps.append("AsyncSocket.queue._getters (an asyncio.Queue)")
    if not inspect.iscoroutinefunction(getattr(socket, "_websocket_handler", None)):
        gaps.append("AsyncSocket._websocket_handler")
    if not _CLOSE_PARAMETERS.issubset(_parameters(getattr(AsyncSocket, "close", None))):
        gaps.append("AsyncSocket.close(wait, abort, reason)")
    if not hasattr(packet, "Packet") or not hasattr(packet, "MESSAGE"):
        gaps.append("engineio.packet.Packet(MESSAGE, data)")
    return gaps


def _parameters(function: Any) -> list[str]:
    return [] if function is None else list(inspect.signature(function).parameters)


def wrap_websockets(eio: engineio.AsyncServer, around: AroundWebsocket) -> None:
    """Run every websocket session of `eio` through `around`, which gets the session id
    and the upgrade request (whose transport is the connection's). The driver table is
    replaced by a copy: the driver module shares it with every other server."""
    driver = eio._async["websocket"]

    class WrappedWebSocket(driver):
        async def __call__(self, environ: dict[str, Any]) -> Any:
            eio_sid = self.handler.__self__.sid  # the AsyncSocket's bound handler

            async def serve(request: web.Request) -> Any:
                environ["aiohttp.request"] = request
                return await driver.__call__(self, environ)

            return await around(eio_sid, environ["aiohttp.request"], serve)

    eio._async = {**eio._async, "websocket": WrappedWebSocket}


def session(eio: engineio.AsyncServer, eio_sid: str) -> AsyncSocket | None:
    """The session's socket, or None once it is gone."""
    return eio.sockets.get(eio_sid)


def writer_idle(socket: AsyncSocket) -> bool:
    """The socket is on the websocket transport and its writer task waits for a packet
    with nothing queued, so bytes written now come after everything sent before. (The
    writer pops its packets off the queue before writing them; while it holds some, or
    waits for the transport to drain, nobody waits on the queue.)"""
    queue = socket.queue
    return (
        socket.upgraded
        and not socket.upgrading
        and not socket.closing
        and not socket.closed
        and queue.empty()
        and bool(queue._getters)  # asyncio.Queue's waiting getters
    )


def queued(socket: AsyncSocket) -> int:
    """How many packets wait for the socket's writer."""
    return socket.queue.qsize()


def message(encoded: str) -> tuple[packet.Packet, str]:
    """An Engine.IO message packet carrying `encoded` (a Socket.IO packet), and its text
    as it goes on a websocket."""
    eio_packet = packet.Packet(packet.MESSAGE, encoded)
    return eio_packet, eio_packet.encode()


def close_soon(eio: engineio.AsyncServer, socket: AsyncSocket) -> None:
    """Close the session without waiting for anything, in a background task (the
    websocket handler, or the next poll, then runs the usual disconnect)."""
    if not socket.closing:
        reason = eio.reason.TRANSPORT_ERROR
        eio.start_background_task(socket.close, wait=False, abort=True, reason=reason)


async def end_session(eio: engineio.AsyncServer, eio_sid: str) -> None:
    """End an Engine.IO session now: its disconnect runs (Socket.IO's and the hub's), a
    pending long-poll gets the close packet, and the session leaves the server's table.
    python-engineio's own `disconnect` instead waits until the client fetches the close
    packet, which on long-polling is for ever when no poll comes."""
    socket = session(eio, eio_sid)
    if socket is None:
        return
    if not socket.closing and not socket.closed:
        await socket.close(wait=False, reason=eio.reason.TRANSPORT_ERROR)
    eio.sockets.pop(eio_sid, None)
