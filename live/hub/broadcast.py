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

The engineio and socketio internals this takes are in `live.hub.engineio_private` and
`live.hub.socketio_private`; when the start-up check finds one missing
(`live.hub.internals`), `client_manager` gives `NotifyingManager`, python-socketio's
own path, which still tells the join snapshots of every emit.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
import socketio
from aiohttp import web

from live.hub import engineio_private, socketio_private

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
        """Track every websocket session of `eio`."""
        engineio_private.wrap_websockets(eio, self._serve)

    async def _serve(
        self, eio_sid: str, request: web.Request, serve: Callable[[web.Request], Awaitable[Any]]
    ) -> Any:
        transport = request.transport
        if transport is None:  # the client is already gone
            return await serve(request)
        self._by_sid[eio_sid] = transport
        try:
            return await serve(without_deflate(request))
        finally:
            if self._by_sid.get(eio_sid) is transport:
                del self._by_sid[eio_sid]


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


def client_manager(redis_url: str, channel: str, fast: bool) -> socketio.AsyncManager:
    """The managers with the fast path when `fast` (both adapters usable, see
    `live.hub.internals`), else python-socketio's own, which still tell `on_emit`."""
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
        if callback is not None:  # each recipient's packet carries its own ack id
            return await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs
            )
        encoded = socketio_private.encode_event(self.server, namespace, event, data)
        if isinstance(encoded, list):  # binary attachments travel as extra frames
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid)
        message, text = engineio_private.message(encoded)
        frame = text_frame(text)
        skipped = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        queued = [
            eio_sid
            for sid, eio_sid in self.get_participants(namespace, room)
            if sid not in skipped and not self._deliver(eio_sid, frame)
        ]
        if queued:
            send = self.server.eio.send_packet
            await asyncio.wait([asyncio.create_task(send(eio_sid, message)) for eio_sid in queued])

    def _deliver(self, eio_sid: str, frame: bytes) -> bool:
        """Write `frame` to the socket's transport, or drop a hopelessly slow socket;
        False when the packet must take the queued path."""
        socket = engineio_private.session(self.server.eio, eio_sid)
        if socket is None:  # disconnected meanwhile
            return True
        transport = self.websockets.get(eio_sid)
        if transport is None or not engineio_private.writer_idle(socket):
            backlog = engineio_private.queued(socket)
            if backlog < self.max_queued_packets:
                return False
            self._disconnect_slow(socket, transport, f"{backlog} packets queued")
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
        self, socket: Any, transport: asyncio.Transport | None, backlog: str
    ) -> None:
        """Cut the connection without waiting: the websocket handler, or the next poll,
        then runs the usual disconnect (rooms, presence)."""
        log.warning("disconnecting a client that does not keep up (%s)", backlog)
        if transport is not None:
            transport.abort()
        engineio_private.close_soon(self.server.eio, socket)


class RedisBroadcastManager(socketio.AsyncRedisManager, BroadcastManager):
    """The Redis backplane, with the fast path for each process's own sockets: an emit
    is published to every process, and each writes the frame to its local sockets."""
