"""Every use of python-socketio's internals, in one place, for an exact version.

The hub needs four things python-socketio offers no public way to do: tell a handler
whether its client asked for an ack, encode an event once for many recipients (the
broadcast fast path), start the client manager before the first connection, and stop
the Redis backplane's listener on shutdown. All of it is here, so an upgrade is
reviewed in one file: `missing()` looks for each internal at start-up
(`live.hub.internals`), and when one is gone the hub takes the public path (a plain
`socketio.AsyncServer`, whose handlers then answer every refusal in the ack, and
python-socketio's own emit).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import socketio
from socketio import packet
from socketio.async_pubsub_manager import AsyncPubSubManager

from live.hub.dispatch import ACK_WANTED

DISTRIBUTION = "python-socketio"
WRITTEN_FOR = "5.18.1"  # pinned exactly in pyproject.toml

_EVENT_PARAMETERS = ["self", "server", "sid", "eio_sid", "data", "namespace", "id"]


def missing() -> list[str]:
    """The internals used here that this python-socketio lacks (none for WRITTEN_FOR)."""
    probe = socketio.AsyncServer(async_mode="aiohttp")
    gaps = []
    handle_event = getattr(socketio.AsyncServer, "_handle_event_internal", None)
    if handle_event is None or _parameters(handle_event) != _EVENT_PARAMETERS:
        gaps.append(f"AsyncServer._handle_event_internal({', '.join(_EVENT_PARAMETERS[1:])})")
    if not isinstance(getattr(probe, "manager_initialized", None), bool):
        gaps.append("AsyncServer.manager_initialized")
    if not callable(getattr(probe, "packet_class", None)) or not hasattr(packet, "EVENT"):
        gaps.append("AsyncServer.packet_class(packet.EVENT, namespace, data)")
    if "thread" not in AsyncPubSubManager.initialize.__code__.co_names:
        gaps.append("AsyncPubSubManager.thread (the listener task)")
    if not hasattr(socketio.AsyncRedisManager("redis://127.0.0.1"), "redis"):
        gaps.append("AsyncRedisManager.redis")
    return gaps


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


class AckAwareServer(socketio.AsyncServer):
    """Records, for the handler about to run, whether the client asked for an ack
    (`ACK_WANTED`): python-socketio tells handlers nothing of it."""

    async def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        ACK_WANTED.set(id is not None)
        await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)


def encode_event(server: socketio.AsyncServer, namespace: str, event: str, data: Any) -> Any:
    """The event packet as python-socketio's emit would send it without an ack: one text
    (str), or a list when binary attachments travel as extra frames. python-socketio's
    convention for `data`: a tuple is several arguments, None is none."""
    arguments = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    return server.packet_class(packet.EVENT, namespace=namespace, data=[event, *arguments]).encode()


def start_manager(sio: socketio.AsyncServer) -> None:
    """Start the client manager (the backplane's listener) now: python-socketio starts
    it at the first connection, noting it in `manager_initialized`."""
    if sio.manager_initialized:
        return
    sio.manager_initialized = True
    sio.manager.initialize()


def backplane_listener(manager: socketio.AsyncManager) -> asyncio.Task | None:
    """The Redis backplane's listener task (python-socketio starts it but never stops
    it), or None without a backplane."""
    listener = getattr(manager, "thread", None)
    return listener if isinstance(listener, asyncio.Task) else None


def backplane_client(manager: socketio.AsyncManager) -> Any:
    """The Redis backplane's client, once connected (else None)."""
    return getattr(manager, "redis", None)
