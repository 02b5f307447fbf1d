"""`RtmpServer`: the asyncio shell around `RtmpConnection`.

One `asyncio.Protocol` per TCP connection (works on uvloop): bytes go straight into the
sans-IO core and its events go to the publisher's `MediaSink`. The shell owns what the
core cannot: the `authorize` call, timers and closing sockets. Anything wrong with one
connection is logged in one line and ends only that connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from rtmp_ingest.connection import RtmpConnection
from rtmp_ingest.events import (
    AudioData,
    ConnectRequested,
    Event,
    Metadata,
    PlayRefused,
    ProtocolError,
    PublishRequested,
    Unpublished,
    VideoData,
)
from rtmp_ingest.limits import Limits
from rtmp_ingest.sink import Authorize, MediaSink, PublishRefused

logger = logging.getLogger("streamcart.rtmp")

STOP_TIMEOUT = 5.0


class RtmpServer:
    """An RTMP server that accepts publishers whose (app, key) `authorize` accepts.

    `handshake_timeout` bounds the time from TCP accept to an accepted publish;
    `idle_timeout` closes a connection that sends nothing for that long.
    """

    def __init__(
        self,
        host: str,
        port: int,
        authorize: Authorize,
        *,
        limits: Limits | None = None,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 20.0,
        max_connections: int = 1000,
    ) -> None:
        self.host = host
        self.authorize = authorize
        self.limits = limits or Limits()
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()

    @property
    def port(self) -> int:
        """The bound port (useful when 0 was asked for)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the RTMP server is not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def connection_count(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self), self.host, self._requested_port
        )
        logger.info("rtmp listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, close every connection and wait until each sink is closed."""
        if self._server is None:
            return
        self._server.close()
        sessions = list(self._sessions)
        for session in sessions:
            session.abort()
        waiters = [session.closed for session in sessions]
        if waiters:
            await asyncio.wait(waiters, timeout=STOP_TIMEOUT)
        await self._server.wait_closed()
        self._server = None

    def disconnect(self, sink: MediaSink, reason: str) -> bool:
        """Close the connection publishing into `sink` (its stream was stopped elsewhere)."""
        for session in self._sessions:
            if session.publishes_to(sink):
                session.stop(reason)
                return True
        return False

    def _opened(self, session: _Session) -> None:
        self._sessions.add(session)

    def _closed(self, session: _Session) -> None:
        self._sessions.discard(session)


class _Session(asyncio.Protocol):
    """One TCP connection: feeds the core, answers its requests, drives the sink."""

    def __init__(self, server: RtmpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._connection = RtmpConnection(server.limits)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._sink: MediaSink | None = None
        self._authorizing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._setup_deadline = 0.0
        self._last_activity = 0.0
        self.closed: asyncio.Future[None] = self._loop.create_future()

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        now = self._loop.time()
        self._last_activity = now
        self._setup_deadline = now + self._server.handshake_timeout
        self._timer = self._loop.call_at(self._setup_deadline, self._check_timeouts)
        self._server._opened(self)

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        events = self._connection.receive_data(data)
        try:
            for event in events:
                self._on_event(event)
        except Exception:
            logger.exception("rtmp %s: media sink failed; closing the connection", self._peer)
            self.abort()
            return
        self._flush()

    def pause_writing(self) -> None:
        """The peer reads nothing we send (we only send small answers): drop it."""
        logger.warning("rtmp %s: closing: peer stopped reading", self._peer)
        self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._authorizing is not None:
            self._authorizing.cancel()
        self._close_sink()
        self._transport = None
        self._server._closed(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # --- events -----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        sink = self._sink
        if type(event) is VideoData and sink is not None:
            sink.on_video(event.timestamp_ms, event.payload)
        elif type(event) is AudioData and sink is not None:
            sink.on_audio(event.timestamp_ms, event.payload)
        elif type(event) is Metadata and sink is not None:
            sink.on_metadata(event.values)
        elif type(event) is ConnectRequested:
            if self._server.connection_count > self._server.max_connections:
                self._connection.reject_connect("The server is full.")
            else:
                self._connection.accept_connect()
        elif type(event) is PublishRequested:
            self._authorizing = self._loop.create_task(self._authorize(event))
        elif type(event) is Unpublished:
            if self._authorizing is not None:
                self._authorizing.cancel()
            self._close_sink()
        elif type(event) is PlayRefused:
            self._fail("refused to play: this server only takes publishers")
        elif type(event) is ProtocolError:
            self._fail(event.reason)

    async def _authorize(self, request: PublishRequested) -> None:
        try:
            sink = await self._server.authorize(request.app, request.key)
        except PublishRefused as refusal:
            self._connection.reject_publish(request.stream_id, refusal.code, refusal.description)
            self._fail(f"publish to {request.app!r} refused: {refusal.code}")
            return
        except Exception:
            logger.exception("rtmp %s: authorize failed", self._peer)
            self._connection.reject_publish(
                request.stream_id, "NetStream.Publish.Failed", "The server could not start it."
            )
            self._fail("publish failed")
            return
        if self._transport is None or self._transport.is_closing():
            sink.close()
            return
        self._sink = sink
        self._connection.accept_publish(request.stream_id)
        self._flush()
        logger.info("rtmp %s: publishing to %r", self._peer, request.app)

    # --- closing ----------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._connection.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)
        if self._connection.finished and self._transport is not None:
            self._transport.close()

    def _fail(self, reason: str) -> None:
        """Log one line, send what the core still has to say, then close."""
        logger.warning("rtmp %s: closing: %s", self._peer, reason)
        if self._transport is not None:
            self._transport.write(self._connection.data_to_send())
            self._transport.close()

    def publishes_to(self, sink: MediaSink) -> bool:
        return self._sink is sink

    def stop(self, reason: str) -> None:
        self._fail(reason)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:
                logger.exception("rtmp %s: media sink failed to close", self._peer)

    def _check_timeouts(self) -> None:
        now = self._loop.time()
        if not self._connection.publishing and now >= self._setup_deadline:
            self._fail(f"not publishing after {self._server.handshake_timeout:g} s")
            return
        idle_deadline = self._last_activity + self._server.idle_timeout
        if now >= idle_deadline:
            self._fail(f"idle for {self._server.idle_timeout:g} s")
            return
        next_check = idle_deadline
        if not self._connection.publishing:
            next_check = min(next_check, self._setup_deadline)
        self._timer = self._loop.call_at(next_check, self._check_timeouts)
