"""Room broadcasts that cost little per recipient: one wire frame, written to every socket.

python-socketio encodes a broadcast once, but then, for each recipient, creates a task,
queues the packet on the Engine.IO socket and wakes that socket's writer task, which
frames it for aiohttp: 45-100 µs of CPU per delivery, so one process saturates near
10,000 deliveries a second. Here the websocket frame is built once and its bytes are
written straight to the transport of every websocket client whose writer is idle, as
Node's socket.io does; a delivery is then one `transport.write`.

Everything else keeps python-socketio's path: emits with an ack callback (each packet
carries its own id), binary payloads, long-polling and upgrading clients, and any
socket whose writer still has packets to send (writing past them would reorder).

A client that stops reading must not make the server buffer without bound: one whose
transport holds more than `max_buffered_bytes` unsent, or that has more than
`max_queued_packets` waiting on python-socketio's path, is disconnected (it reconnects
and catches up from the `session:join` snapshot). No write ever waits, so a stalled
client never delays the others.

This is also the one module that touches python-socketio's and python-engineio's
internals for the rest of the hub: `AckAwareServer` tells handlers whether the client
asked for an ack, `end_session` ends an Engine.IO session without waiting for the
client, and `start_manager` starts the backplane before the first connection. Both
libraries are pinned exactly for these; `fast_path` checks for every one at start
(`check`) and, without one, logs an error and the hub takes the public path:
`NotifyingManager` (which still tells the join snapshots of every emit), a plain
`socketio.AsyncServer` (refusals then go only in acks) and no `end_session` (a refused
long-polling session then lasts until its ping timeout).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import engineio
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from live.hub.dispatch import ACK_WANTED

log = logging.getLogger("streamcart.hub.broadcast")
MAX_BUFFERED_BYTES = 1024 * 1024
MAX_QUEUED_PACKETS = 1024
_FIN_TEXT = 0x81  # FIN bit + opcode 1 (text)


def text_frame(text: str) -> bytes:
    """One final, unmasked websocket text frame (server to client, RFC 6455 section 5.2).
    Uncompressed frames are valid even when permessage-deflate was negotiated (RSV1 = 0
    marks the message as not compressed)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


class WebsocketTransports:
    """The TCP transport under each websocket connection, by Engine.IO session id.

    python-socketio keeps no handle on it, so the aiohttp driver's websocket class is
    wrapped: each connection registers its request's transport for as long as it lasts.
    """

    def __init__(self) -> None:
        self._by_sid: dict[str, asyncio.Transport] = {}

    def get(self, eio_sid: str) -> asyncio.Transport | None:
        return self._by_sid.get(eio_sid)

    def install(self, eio: engineio.AsyncServer) -> None:
        """Wrap `eio`'s websocket class (on a copy of its driver table, which the driver
        module shares with every other server)."""
        registry = self._by_sid
        driver_websocket = eio._async["websocket"]

        class TrackedWebSocket(driver_websocket):
            async def __call__(self, environ: dict[str, Any]) -> Any:
                eio_sid = self.handler.__self__.sid  # the AsyncSocket's bound handler
                transport = environ["aiohttp.request"].transport
                if transport is None:  # the client is already gone
                    return await super().__call__(environ)
                registry[eio_sid] = transport
                environ["aiohttp.request"] = without_deflate(environ["aiohttp.request"])
                try:
                    return await super().__call__(environ)
                finally:
                    if registry.get(eio_sid) is transport:
                        del registry[eio_sid]

        eio._async = {**eio._async, "websocket": TrackedWebSocket}


def without_deflate(request: web.Request) -> web.Request:
    """The upgrade request without its extension offers, so the websocket is opened
    without permessage-deflate. Node's socket.io does not compress either; here the
    zlib context each connection set up was a fifth of a join's CPU, and room
    broadcasts go out as uncompressed frames anyway."""
    if "Sec-WebSocket-Extensions" not in request.headers:
        return request
    headers = request.headers.copy()
    del headers["Sec-WebSocket-Extensions"]
    return request.clone(headers=headers)


def _writer_idle(socket: AsyncSocket) -> bool:
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


def _arguments(data: Any) -> list[Any]:
    """An emit's data as the event's argument list (python-socketio's convention: a
    tuple is several arguments, None is none)."""
    if isinstance(data, tuple):
        return list(data)
    return [] if data is None else [data]


class SocketioIncompatible(RuntimeError):
    """This python-socketio or python-engineio lacks an internal the fast path uses."""


_EVENT_PARAMETERS = ["self", "server", "sid", "eio_sid", "data", "namespace", "id"]
_CLOSE_PARAMETERS = {"wait", "abort", "reason"}


def check() -> None:
    """Raise SocketioIncompatible, naming the versions, unless python-engineio and
    python-socketio have every internal this module uses (they are pinned exactly)."""
    server = socketio.AsyncServer(async_mode="aiohttp")
    probe = server.eio
    missing = []
    if "websocket" not in getattr(probe, "_async", {}):
        missing.append("engineio.AsyncServer._async['websocket']")
    if not isinstance(getattr(probe, "sockets", None), dict):
        missing.append("engineio.AsyncServer.sockets")
    socket = AsyncSocket(probe, "probe")
    missing += [
        f"AsyncSocket.{name}"
        for name in ("queue", "upgraded", "upgrading", "closing", "closed")
        if not hasattr(socket, name)
    ]
    if not hasattr(getattr(socket, "queue", None), "_getters"):
        missing.append("the socket queue's _getters")
    if not _CLOSE_PARAMETERS.issubset(_parameters(getattr(socket, "close", None))):
        missing.append("AsyncSocket.close(wait, abort, reason)")
    if not hasattr(getattr(probe, "reason", None), "TRANSPORT_ERROR"):
        missing.append("engineio.AsyncServer.reason.TRANSPORT_ERROR")
    missing += [
        f"socketio.AsyncServer.{name}"
        for name in ("_send_eio_packet", "packet_class", "start_background_task")
        if not hasattr(server, name)
    ]
    handle_event = getattr(socketio.AsyncServer, "_handle_event_internal", None)
    if _parameters(handle_event) != _EVENT_PARAMETERS:
        missing.append(
            "socketio.AsyncServer._handle_event_internal(" + ", ".join(_EVENT_PARAMETERS[1:]) + ")"
        )
    if missing:
        raise SocketioIncompatible(
            f"python-socketio {version('python-socketio')} / python-engineio "
            f"{version('python-engineio')} lack {', '.join(missing)}"
        )


def _parameters(function: Any) -> list[str]:
    return [] if function is None else list(inspect.signature(function).parameters)


def fast_path() -> bool:
    """Whether this python-socketio has every internal used here (logged when not)."""
    try:
        check()
    except SocketioIncompatible as error:
        log.error("the hub takes python-socketio's public path: %s", error)
        return False
    return True


class AckAwareServer(socketio.AsyncServer):
    """Records, for the handler about to run, whether the client asked for an ack
    (`ACK_WANTED`): python-socketio tells handlers nothing of it."""

    async def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        ACK_WANTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


def start_manager(sio: socketio.AsyncServer) -> None:
    """Start the client manager (the backplane's listener) now: python-socketio starts
    it at the first connection, noting it in `manager_initialized`. Without that flag
    the manager is left to start as python-socketio does."""
    if getattr(sio, "manager_initialized", True):
        return
    sio.manager_initialized = True
    sio.manager.initialize()


async def end_session(eio: engineio.AsyncServer, eio_sid: str) -> None:
    """End an Engine.IO session now: its disconnect runs (Socket.IO's and the hub's), a
    pending long-poll gets the close packet, and the session leaves the server's table.
    python-engineio's own `disconnect` instead waits until the client fetches the close
    packet, which on long-polling is for ever when no poll comes."""
    socket = eio.sockets.get(eio_sid)
    if socket is None:
        return
    if not socket.closing and not socket.closed:
        await socket.close(wait=False, reason=eio.reason.TRANSPORT_ERROR)
    eio.sockets.pop(eio_sid, None)


def client_manager(redis_url: str, channel: str, fast: bool) -> socketio.AsyncManager:
    """The managers with the fast path when `fast` (see `fast_path`), else
    python-socketio's own, which still tell `on_emit`."""
    if not fast:
        if redis_url:
            return NotifyingRedisManager(redis_url, channel=channel)
        return NotifyingManager()
    if redis_url:
        return RedisBroadcastManager(redis_url, channel=channel)
    return BroadcastManager()


class NotifyingManager(socketio.AsyncManager):
    """python-socketio's manager, public path only, telling `on_emit` of every emit this
    process delivers (the join snapshots' invalidation)."""

    on_emit: Callable[[str, Any], None] | None = None

    async def emit(self, event: str, data: Any, namespace: str, **kwargs: Any) -> Any:
        if self.on_emit is not None:
            self.on_emit(event, kwargs.get("to") or kwargs.get("room"))
        return await super().emit(event, data, namespace, **kwargs)


class NotifyingRedisManager(socketio.AsyncRedisManager, NotifyingManager):
    """The Redis backplane on the public path: each process tells `on_emit` as it
    delivers an emit to its own sockets."""


class BroadcastManager(socketio.AsyncManager):
    """python-socketio's manager with the one-frame fast path for emits to rooms."""

    max_buffered_bytes = MAX_BUFFERED_BYTES
    max_queued_packets = MAX_QUEUED_PACKETS
    on_emit: Callable[[str, Any], None] | None = None  # as NotifyingManager's

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websockets = WebsocketTransports()

    def set_server(self, server: socketio.AsyncServer) -> None:
        super().set_server(server)
        self.websockets.install(server.eio)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """To the local sockets of `room` (all of the namespace when None), except
        `skip_sid` (one sid or a list)."""
        room = to or room
        if self.on_emit is not None:
            self.on_emit(event, room)
        if callback is not None or namespace not in self.rooms:
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *_arguments(data)]
        ).encode()
        if isinstance(encoded, list):  # binary attachments travel as extra frames
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid)
        message = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(message.encode())
        skipped = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        queued = [
            eio_sid
            for sid, eio_sid in self.get_participants(namespace, room)
            if sid not in skipped and not self._deliver(eio_sid, frame)
        ]
        if queued:
            await asyncio.wait(
                [
                    asyncio.create_task(self.server._send_eio_packet(eio_sid, message))
                    for eio_sid in queued
                ]
            )

    def _deliver(self, eio_sid: str, frame: bytes) -> bool:
        """Write `frame` to the socket's transport, or drop a hopelessly slow socket;
        False when the packet must take the queued path."""
        socket = self.server.eio.sockets.get(eio_sid)
        if socket is None:  # disconnected meanwhile
            return True
        transport = self.websockets.get(eio_sid)
        if transport is None or not _writer_idle(socket):
            if socket.queue.qsize() < self.max_queued_packets:
                return False
            self._disconnect_slow(socket, transport, f"{socket.queue.qsize()} packets queued")
            return True
        if transport.is_closing():
            return True
        if transport.get_write_buffer_size() > self.max_buffered_bytes:
            buffered = transport.get_write_buffer_size()
            self._disconnect_slow(socket, transport, f"{buffered} bytes unsent")
            return True
        transport.write(frame)
        return True

    def _disconnect_slow(
        self, socket: AsyncSocket, transport: asyncio.Transport | None, backlog: str
    ) -> None:
        """Cut the connection without waiting: the websocket handler, or the next poll,
        then runs the usual disconnect (rooms, presence)."""
        log.warning("disconnecting a client that does not keep up (%s)", backlog)
        if transport is not None:
            transport.abort()
        if not socket.closing:
            reason = self.server.eio.reason.TRANSPORT_ERROR
            self.server.start_background_task(socket.close, wait=False, abort=True, reason=reason)


class RedisBroadcastManager(socketio.AsyncRedisManager, BroadcastManager):
    """The Redis backplane, with the fast path for each process's own sockets: an emit
    is published to every process, and each writes the frame to its local sockets."""
