"""The hub's broadcast fast path (`live.hub.broadcast`) with real python-socketio clients:
who receives a room emit, skip_sid, long-polling and upgrading clients, binary payloads,
ordering next to emits that take python-socketio's queued path, a stalled client, and
the Redis backplane."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import socketio
from aiohttp import web

from live.hub.broadcast import BroadcastManager, RedisBroadcastManager, text_frame
from live.hub.server import _stop_backplane
from tests.backends import REDIS_URL, require
from tests.hub_support import WAIT, Socket
from tests.tcp_proxy import TcpProxy

SIZES = (10, 300, 70_000)  # the three websocket length encodings: 7-bit, 16-bit, 64-bit
STALL_PAYLOAD = "x" * 256 * 1024
MAX_STALL_EMITS = 400  # ~100 MB: far beyond what the kernel buffers of one socket hold


class Room:
    """A Socket.IO server on a real aiohttp server, using the manager under test, whose
    clients `join` rooms; it records the sids it saw disconnect."""

    def __init__(self, manager: socketio.AsyncManager) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
        self.gone: asyncio.Queue[str] = asyncio.Queue()
        self.sio.on("join", self._join)
        self.sio.on("disconnect", self._disconnect)

    async def _join(self, sid: str, room: str) -> str:
        await self.sio.enter_room(sid, room)
        return sid

    async def _disconnect(self, sid: str, reason: str | None = None) -> None:
        self.gone.put_nowait(sid)

    def app(self) -> web.Application:
        app = web.Application()
        self.sio.attach(app)
        return app


Connect = Callable[..., Awaitable[tuple[Socket, str]]]


@pytest.fixture
async def room(aiohttp_server) -> AsyncIterator[tuple[Room, str]]:
    hub = Room(BroadcastManager())
    server = await aiohttp_server(hub.app())
    yield hub, str(server.make_url("/"))


@pytest.fixture
async def connect(room) -> AsyncIterator[Connect]:
    """A client of `room`'s server in `joins` rooms; returns it and its sid."""
    opened: list[Socket] = []

    async def open_(*joins: str, url: str | None = None, transports=("websocket",)):
        socket = Socket()
        opened.append(socket)
        await socket.client.connect(url or room[1], transports=list(transports), wait_timeout=WAIT)
        sid = ""
        for name in joins:
            sid = await socket.call("join", name)
        return socket, sid

    yield open_
    if room[0].sio.eio.sockets:  # first, or a polling client waits for its long-poll
        await room[0].sio.eio.disconnect()
    for socket in opened:
        await socket.client.disconnect()


async def all_done(sio: socketio.AsyncServer, sockets: list[Socket]) -> None:
    """A last emit to everyone; per-socket order means all earlier ones arrived first."""
    await sio.emit("done", {})
    for socket in sockets:
        await socket.wait_for("done")


def test_frames_encode_each_length_form():
    assert text_frame("4hi") == b"\x81\x034hi"
    assert text_frame("a" * 300)[:4] == b"\x81\x7e\x01\x2c"
    assert text_frame("a" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")


async def test_a_room_broadcast_reaches_each_member_exactly_once_and_nobody_else(room, connect):
    sio = room[0].sio
    members = [(await connect("stage"))[0] for _ in range(4)]
    outsiders = [(await connect("backstage"))[0] for _ in range(2)] + [(await connect())[0]]
    sent = [{"n": n, "text": "á" * size} for n, size in enumerate(SIZES * 3)]
    for payload in sent:
        await sio.emit("price", payload, to="stage")
    await all_done(sio, members + outsiders)
    for socket in members:
        assert socket.received("price") == sent
    for socket in outsiders:
        assert socket.received("price") == []


async def test_skip_sid_leaves_out_one_sid_or_a_list(room, connect):
    sio = room[0].sio
    (seller, seller_sid), (ann, ann_sid), (bob, _) = [await connect("stage") for _ in range(3)]
    await sio.emit("chat", {"n": 1}, to="stage", skip_sid=seller_sid)
    await sio.emit("chat", {"n": 2}, to="stage", skip_sid=[seller_sid, ann_sid])
    await all_done(sio, [seller, ann, bob])
    assert seller.received("chat") == []
    assert ann.received("chat") == [{"n": 1}]
    assert bob.received("chat") == [{"n": 1}, {"n": 2}]


async def test_long_polling_and_upgrading_clients_receive_too(room, connect):
    sio = room[0].sio
    polling, _ = await connect("stage", transports=("polling",))
    upgrading, _ = await connect("stage", transports=("polling", "websocket"))
    websocket, _ = await connect("stage")
    sent = [{"n": n} for n in range(30)]
    for payload in sent:
        await sio.emit("price", payload, to="stage")
    await all_done(sio, [polling, upgrading, websocket])
    for socket in (polling, upgrading, websocket):
        assert socket.received("price") == sent
    assert polling.client.transport() == "polling"


async def test_binary_payloads_arrive_whole(room, connect):
    sio = room[0].sio
    members = [(await connect("stage"))[0] for _ in range(2)]
    await sio.emit("image", {"png": b"\x89PNG\x00\xff"}, to="stage")
    await all_done(sio, members)
    for socket in members:
        assert socket.received("image") == [{"png": b"\x89PNG\x00\xff"}]


async def test_fast_and_queued_emits_to_one_socket_keep_their_order(room, connect):
    """Emits with an ack callback take python-socketio's queue; the frames written
    directly must never overtake them."""
    sio = room[0].sio
    socket, sid = await connect("stage")
    for n in range(60):
        if n % 3 == 0:
            await sio.emit("numbered", n, to=sid, callback=lambda *_: None)
        else:
            await sio.emit("numbered", n, to="stage")
    await all_done(sio, [socket])
    assert socket.received("numbered") == list(range(60))


async def test_a_stalled_client_is_dropped_and_never_holds_up_the_others(room, connect):
    hub, url = room
    proxy = TcpProxy("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))
    port = await proxy.start()
    try:
        _, stalled_sid = await connect("stage", url=f"http://127.0.0.1:{port}")
        healthy = [(await connect("stage"))[0] for _ in range(2)]
        proxy.stall()
        emits = 0
        while emits < MAX_STALL_EMITS and hub.gone.empty():
            await hub.sio.emit("blob", STALL_PAYLOAD, to="stage")
            emits += 1
            for socket in healthy:
                await socket.wait_for("blob")
        assert await asyncio.wait_for(hub.gone.get(), WAIT) == stalled_sid
        assert emits < MAX_STALL_EMITS
        await all_done(hub.sio, healthy)
        for socket in healthy:
            assert len(socket.received("blob")) == emits
        assert stalled_sid not in dict(hub.sio.manager.get_participants("/", "stage"))
    finally:
        await proxy.close()


@pytest.mark.redis
async def test_over_redis_each_process_fans_out_to_its_own_sockets(aiohttp_server, connect):
    redis_url = require(REDIS_URL, "Redis")
    channel = f"streamcart-test-{uuid.uuid4().hex}"
    a = Room(RedisBroadcastManager(redis_url, channel=channel))
    b = Room(RedisBroadcastManager(redis_url, channel=channel))
    servers = [await aiohttp_server(hub.app()) for hub in (a, b)]
    try:
        on_a, _ = await connect("stage", url=str(servers[0].make_url("/")))
        on_b, b_sid = await connect("stage", url=str(servers[1].make_url("/")))
        also_on_b, _ = await connect("stage", url=str(servers[1].make_url("/")))
        for attempt in range(50):  # until b's listener has subscribed
            await a.sio.emit("hello", attempt, to="stage")
            try:
                await on_b.wait_for("hello", within=0.1)
                break
            except TimeoutError:
                continue
        await a.sio.emit("price", {"n": 1}, to="stage", skip_sid=b_sid)
        await all_done(a.sio, [on_a, on_b, also_on_b])
        assert on_a.received("price") == also_on_b.received("price") == [{"n": 1}]
        assert on_b.received("price") == []
    finally:
        for hub in (a, b):
            await hub.sio.shutdown()
            await _stop_backplane(hub.sio.manager)


async def test_websockets_open_without_permessage_deflate_even_when_offered(room):
    """As Node's socket.io: an offer of compression is declined, and the connection
    still works (the open packet arrives)."""
    url = room[1].rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, compress=15) as ws:
        assert ws.compress == 0
        opened = await ws.receive_str(timeout=WAIT)
        assert opened.startswith("0{") and '"sid"' in opened
