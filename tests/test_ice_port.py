"""Every WebRTC peer of the process on one UDP port (and one TCP port for ICE-TCP).

Real aiortc viewers watch through the shared port while strangers throw datagrams and
TCP connections at it: what is not an authenticated viewer's is dropped and counted,
and the viewers play on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import struct
from collections import Counter

import pytest
from aioice import stun
from aioice.utils import random_transaction_id

from signaling import ice_port
from signaling.adapters.aiortc_private import ice_connections
from signaling.ice_setup import remote_reachable, resolve
from signaling.routes import WHEP
from tests import test_whep
from tests.media_support import publish
from tests.test_whep import SPEED
from tests.webrtc_support import DecodingViewer, eventually

ICE = re.compile(r"^a=ice-(ufrag|pwd):(\S+)", re.MULTILINE)
CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (\w+) \d+ (\S+) (\d+) typ host(.*)$", re.MULTILINE)
LOOPBACK = "127.0.0.1"
STRANGERS = 8  # sockets the flood comes from


loopback_only = test_whep.loopback_only  # the WHEP tests' fixtures, used here too
make_server = test_whep.make_server


@pytest.fixture
async def shared(make_server):
    return await make_server()


def ice_credentials(answer: str) -> dict[str, str]:
    return dict(ICE.findall(answer))


def binding_request(username: str, password: str) -> bytes:
    request = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.REQUEST,
        transaction_id=random_transaction_id(),
    )
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(password.encode())
    return bytes(request)


async def test_viewers_share_one_port_offered_on_the_given_host(shared, stream_tags):
    port = shared.service.ice_port
    hub = shared.open_stream()
    viewers = [DecodingViewer() for _ in range(3)]
    try:
        answers = []
        for viewer in viewers:
            response = await shared.post_offer(await viewer.offer())
            assert response.status == 201
            answers.append(await response.text())
            await viewer.accept(answers[-1])
        candidates = {(*c[:3], c[3].strip()) for a in answers for c in CANDIDATE.findall(a)}
        assert candidates == {
            ("udp", LOOPBACK, str(port.udp_port), ""),
            ("tcp", LOOPBACK, str(port.tcp_port), "tcptype passive"),
        }
        fragments = [ice_credentials(answer)["ufrag"] for answer in answers]
        assert len(set(fragments)) == 3 and all(len(f) >= 16 for f in fragments)
        assert await eventually(lambda: all(v.connected for v in viewers))
        for peer in shared.service._viewers.values():
            (connection,) = ice_connections(peer.peer)
            local = connection._nominated[1].protocol.transport.get_extra_info("sockname")
            assert local[1] == port.udp_port
        await publish(hub, stream_tags, speed=SPEED)
        assert await eventually(lambda: all(v.video_frames >= 60 for v in viewers))
        assert await eventually(lambda: all(v.audio_frames > 0 for v in viewers))
        assert port.peers == 3
    finally:
        for viewer in viewers:
            await viewer.close()
    assert await eventually(lambda: port.peers == 0 and not port._by_address)


async def test_hostile_datagrams_are_dropped_while_viewers_play(shared, stream_tags):
    port = shared.service.ice_port
    hub = shared.open_stream()
    viewers = [DecodingViewer(), DecodingViewer()]
    publisher = asyncio.create_task(publish(hub, stream_tags * 3, speed=1.0))
    strangers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(STRANGERS)]
    try:
        fragments = []
        for viewer in viewers:
            response = await shared.post_offer(await viewer.offer())
            answer = await response.text()
            fragments.append(ice_credentials(answer)["ufrag"])
            await viewer.accept(answer)
        assert await eventually(lambda: all(v.video_frames > 10 for v in viewers))
        before = [v.video_frames for v in viewers]
        target = (LOOPBACK, port.udp_port)
        sent: Counter[str] = Counter()
        kinds = {
            "random": lambda: os.urandom(random.randint(1, 1400)),
            "unknown-username": lambda: binding_request("nobody:x", "password" * 3),
            "forged-username": lambda: binding_request(f"{fragments[0]}:x", "wrong" * 5),
            "dtls": lambda: b"\x16\xfe\xfd" + os.urandom(200),
            "srtp": lambda: b"\x80\x60" + os.urandom(300),
            "stun-response": lambda: b"\x01\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12),
        }
        for round_ in range(500):
            for kind, make in kinds.items():
                strangers[round_ % STRANGERS].sendto(make(), target)
                sent[kind] += 1
            if round_ % 50 == 0:
                await asyncio.sleep(0.01)
        assert sent.total() == 3000
        assert await eventually(lambda: port.dropped.total() >= sent.total())
        print(dict(port.dropped))
        assert port.dropped["unknown-username"] >= sent["unknown-username"]
        assert port.dropped["bad-integrity"] == sent["forged-username"]
        assert port.dropped["unknown-transaction"] >= sent["stun-response"]
        assert port.dropped["unknown-sender"] >= sent["dtls"] + sent["srtp"]
        assert not {s.getsockname() for s in strangers} & set(port._by_address)
        assert await eventually(
            lambda: all(v.video_frames > b + 30 for v, b in zip(viewers, before, strict=True))
        )
        assert all(v.connected for v in viewers)
    finally:
        publisher.cancel()
        for stranger in strangers:
            stranger.close()
        for viewer in viewers:
            await viewer.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack("!H", await reader.readexactly(2))
    return await reader.readexactly(size)


async def test_ice_tcp_answers_an_authenticated_binding_request(shared):
    shared.open_stream()
    viewer = DecodingViewer()
    try:
        offer = await viewer.offer()
        response = await shared.post_offer(offer)
        credentials = ice_credentials(await response.text())
        theirs = ice_credentials(offer)["ufrag"]
        reader, writer = await asyncio.open_connection(LOOPBACK, shared.service.ice_port.tcp_port)
        request = binding_request(f"{credentials['ufrag']}:{theirs}", credentials["pwd"])
        writer.write(struct.pack("!H", len(request)) + request)
        answer = stun.parse_message(await asyncio.wait_for(read_frame(reader), 5))
        assert answer.message_class == stun.Class.RESPONSE
        assert answer.transaction_id == request[8:20]
        assert answer.attributes["XOR-MAPPED-ADDRESS"] == writer.get_extra_info("sockname")
        assert answer.check_message_integrity(credentials["pwd"].encode())
        writer.close()
    finally:
        await viewer.close()


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # not even framed
        struct.pack("!H", 40) + os.urandom(40),
        struct.pack("!H", 60) + binding_request("nobody:x", "password" * 3)[:60],
    ],
)
async def test_ice_tcp_closes_a_connection_that_is_not_a_viewers(shared, first):
    port = shared.service.ice_port
    reader, writer = await asyncio.open_connection(LOOPBACK, port.tcp_port)
    writer.write(first)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
    writer.close()
    assert port.dropped.total() == 1


async def test_ice_tcp_closes_a_silent_connection(shared, monkeypatch):
    monkeypatch.setattr(ice_port, "TCP_FIRST_MESSAGE_SECONDS", 0.3)
    port = shared.service.ice_port
    reader, writer = await asyncio.open_connection(LOOPBACK, port.tcp_port)
    writer.write(struct.pack("!H", 100) + b"x" * 50)  # half a frame, then nothing
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert port.dropped == {"tcp-silent": 1}


async def test_ice_tcp_holds_only_so_many_connections_waiting_to_speak(shared, monkeypatch):
    monkeypatch.setattr(ice_port, "TCP_MAX_UNBOUND", 3)
    port = shared.service.ice_port
    waiting = [await asyncio.open_connection(LOOPBACK, port.tcp_port) for _ in range(5)]
    refused = 0
    for reader, _ in waiting:
        with contextlib.suppress(TimeoutError):  # else still waiting for its first message
            refused += await asyncio.wait_for(reader.read(), 0.5) == b""
    assert refused == 2
    assert port.dropped == {"tcp-too-many": 2}
    for _, writer in waiting:
        writer.close()
    assert await eventually(lambda: not port._unbound)


def test_loopback_and_link_local_are_never_offered_to_remote_viewers():
    assert not remote_reachable("127.0.0.2")
    assert not remote_reachable("::1")
    assert not remote_reachable("fe80::1")
    assert not remote_reachable("169.254.3.4")
    assert remote_reachable("198.18.1.1")
    assert remote_reachable("2001:db8::1")


async def test_public_host_names_are_resolved_at_start(monkeypatch):
    assert LOOPBACK in await resolve(["localhost", "198.18.1.1"])
    assert "198.18.1.1" in await resolve(["198.18.1.1"])

    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        await resolve(["not a host name"])  # refused before any lookup

    async def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
    with pytest.raises(ValueError, match=r"STREAMCART_WEBRTC_PUBLIC_HOSTS: 'cdn\.example'"):
        await resolve(["cdn.example"])


async def test_the_apps_port_counts_what_it_drops_in_metrics(api):
    """The app on its settings' port: junk from a stranger shows up in /metrics."""
    port = api.app[WHEP].ice_port
    assert port is not None and port.hosts == [LOOPBACK]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        for _ in range(5):
            stranger.sendto(b"\x80\x60" + os.urandom(100), (LOOPBACK, port.udp_port))
        stranger.sendto(binding_request("nobody:x", "password" * 3), (LOOPBACK, port.udp_port))
    assert await eventually(lambda: port.dropped.total() == 6)
    text = await (await api.get("/metrics")).text()
    assert 'streamcart_webrtc_dropped_total{reason="unknown-sender"} 5.0' in text
    assert 'streamcart_webrtc_dropped_total{reason="unknown-username"} 1.0' in text
    assert "streamcart_webrtc_viewers 0.0" in text
    assert "streamcart_relay_pulls 0.0" in text
