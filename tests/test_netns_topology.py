"""The NAT topology of tests/netns_support.py is what it claims to be: the viewer reaches
the server only through the router's NAT, the server cannot reach the viewer's private
address, `block_udp` lets only TCP cross, coturn answers the viewer, and nothing of the
topology is left behind. The app itself runs there too, ready for a browser."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aioice import stun

from tests.chromium_support import NetworkNamespace, candidate_addresses
from tests.netns_support import (
    HTTP_PORT,
    ROUTER_PUBLIC_IP,
    SERVER_IP,
    VIEWER_IP,
    Coturn,
    Impairment,
    NatTopology,
    connected,
    require_netns,
    scheduled_session,
    stun_binding,
    turn_allocation,
    until_live,
)

PROBE_PORT = 9000
UNREACHABLE_WITHIN = 2.0
FETCH = (
    "import sys, urllib.request\n"
    "print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"
)


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True, text=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


@contextlib.contextmanager
def nat(**options: Any) -> Iterator[NatTopology]:
    """The topology, whose three namespaces exist while it is open and are gone after."""
    with NatTopology(**options) as net:
        names = {namespace.name for namespace in net.namespaces}
        assert names <= namespaces()
        yield net
    assert not names & namespaces(), "namespaces left behind"


@contextlib.asynccontextmanager
async def who_is_asking(namespace: NetworkNamespace) -> AsyncIterator[None]:
    """An HTTP server on 0.0.0.0:8080 in `namespace` answering with the client's address."""

    async def remote(request: web.Request) -> web.Response:
        return web.Response(text=str(request.remote))

    app = web.Application()
    app.router.add_get("/", remote)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        listening = namespace.bound_socket(socket.SOCK_STREAM, ("0.0.0.0", HTTP_PORT))  # noqa: S104
        await web.SockSite(runner, listening).start()
        yield
    finally:
        await runner.cleanup()


async def fetch_from(net: NatTopology, namespace: NetworkNamespace) -> tuple[int, str, str]:
    """GET http://198.18.1.1:8080/ by a Python process in `namespace`."""
    url = f"http://{SERVER_IP}:{HTTP_PORT}/"
    return await net.run(namespace, sys.executable, "-c", FETCH, url)


async def datagrams(
    sender: NetworkNamespace, receiver: NetworkNamespace, count: int
) -> list[tuple[str, int]]:
    """Send `count` datagrams from `sender` to 198.18.1.1:9000 in `receiver`; the source
    address of each that arrives (waiting until none has come for 0.3 s)."""
    loop = asyncio.get_running_loop()
    with receiver.bound_socket(socket.SOCK_DGRAM, (SERVER_IP, PROBE_PORT)) as inbox:
        inbox.setblocking(False)
        inbox.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        with await connected(sender, (SERVER_IP, PROBE_PORT), socket.SOCK_DGRAM) as outbox:
            for number in range(count):
                await loop.sock_sendall(outbox, b"datagram %d" % number)
                await asyncio.sleep(0.001)
        sources = []
        with contextlib.suppress(TimeoutError):
            while True:
                _, source = await asyncio.wait_for(loop.sock_recvfrom(inbox, 2048), 0.3)
                sources.append(source)
    return sources


async def test_the_viewer_reaches_the_server_only_through_the_nat():
    with nat() as net:
        async with who_is_asking(net.server):
            code, seen_as, err = await fetch_from(net, net.viewer)
        assert code == 0, err
        assert seen_as.strip() == ROUTER_PUBLIC_IP  # masqueraded, not 198.19.2.10

        sources = await datagrams(net.viewer, net.server, 5)
        assert [host for host, _ in sources] == [ROUTER_PUBLIC_IP] * 5

        with net.viewer.bound_socket(socket.SOCK_STREAM, (VIEWER_IP, PROBE_PORT)) as listening:
            listening.listen()
            # The router, on the private network, gets there: something is listening.
            (await connected(net.router, (VIEWER_IP, PROBE_PORT))).close()
            started = time.monotonic()
            with pytest.raises(OSError) as unreachable:  # TimeoutError is an OSError too
                async with asyncio.timeout(UNREACHABLE_WITHIN):
                    await connected(net.server, (VIEWER_IP, PROBE_PORT))
            assert time.monotonic() - started < UNREACHABLE_WITHIN + 0.5
            assert isinstance(unreachable.value, TimeoutError) or unreachable.value.errno in {
                errno.ENETUNREACH,
                errno.EHOSTUNREACH,
            }, unreachable.value


async def test_block_udp_lets_only_tcp_cross():
    with nat(block_udp=True) as net:
        assert await datagrams(net.viewer, net.server, 20) == []
        assert len(await datagrams(net.server, net.server, 3)) == 3  # the inbox works
        async with who_is_asking(net.server):
            code, seen_as, err = await fetch_from(net, net.viewer)
        assert code == 0, err
        assert seen_as.strip() == ROUTER_PUBLIC_IP


async def test_coturn_answers_the_viewer_through_the_nat(tmp_path):
    require_netns("turnserver")
    with nat() as net:
        async with Coturn(net, tmp_path) as turn:
            for transport in ("udp", "tcp"):
                mapped = await stun_binding(net.viewer, transport=transport)
                assert mapped is not None, f"no STUN answer over {transport}"
                assert mapped[0] == ROUTER_PUBLIC_IP, mapped
                relayed = await turn_allocation(
                    net.viewer, *turn.credentials(), transport=transport
                )
                assert relayed[0] == SERVER_IP, relayed

            username, _ = turn.credentials()
            with pytest.raises(stun.TransactionFailed) as refused:
                await turn_allocation(net.viewer, username, "not-the-password")
            assert refused.value.response is not None
            assert refused.value.response.error_code == 401
        assert turn.process is not None and turn.process.poll() is not None  # stopped


async def test_coturn_behind_block_udp_is_reached_over_tcp_only(tmp_path):
    require_netns("turnserver")
    with nat(block_udp=True) as net:
        async with Coturn(net, tmp_path) as turn:
            assert await stun_binding(net.viewer, seconds=0.5) is None
            mapped = await stun_binding(net.viewer, transport="tcp")
            assert mapped is not None and mapped[0] == ROUTER_PUBLIC_IP, mapped
            relayed = await turn_allocation(net.viewer, *turn.credentials(), transport="tcp")
            assert relayed[0] == SERVER_IP, relayed


async def test_the_router_loses_a_share_of_what_it_forwards():
    with nat(impairment=Impairment(loss_percent=50)) as net:
        arrived = len(await datagrams(net.viewer, net.server, 200))
    assert 50 <= arrived <= 150, arrived  # 100 expected, 7 standard deviations


async def test_the_router_delays_what_it_forwards():
    with nat(impairment=Impairment(delay_ms=50)) as net:
        async with who_is_asking(net.server):
            started = time.monotonic()
            (await connected(net.viewer, (SERVER_IP, HTTP_PORT))).close()
            handshake = time.monotonic() - started
    assert handshake >= 0.1, handshake  # SYN and SYN-ACK each wait 50 ms


async def test_the_app_runs_in_the_server_namespace_ready_for_a_browser(tmp_path):
    """The harness for WHEP across the NAT: the app serves in the server namespace (its
    REST API reached from the test), ffmpeg publishes there, and Chromium in the viewer
    namespace is on the app's origin with its private address and coturn's relay."""
    require_netns("ffmpeg", "chromium", "turnserver")
    with nat() as net:
        async with Coturn(net, tmp_path) as turn, net.serving(tmp_path, turn.app_settings()) as api:
            show = await scheduled_session(api)
            live_id = show["live"]["id"]
            publisher = asyncio.create_task(net.publish(show["key"], 2))
            try:
                await until_live(api, live_id)
                async with net.chromium(tmp_path) as chromium:
                    origin = await chromium.page.evaluate("location.origin")
                    assert origin == f"http://{SERVER_IP}:{HTTP_PORT}"
                    host = candidate_addresses(await chromium.offer())
                    assert VIEWER_IP in host and "127.0.0.1" not in host, host
                    relay = {"iceServers": [turn.ice_server()], "iceTransportPolicy": "relay"}
                    relayed = candidate_addresses(await chromium.offer(relay))
                    assert relayed and set(relayed) == {SERVER_IP}, relayed
            except BaseException:
                publisher.cancel()  # run_ffmpeg kills ffmpeg
                await asyncio.gather(publisher, return_exceptions=True)
                raise
            code, errors = await publisher
            assert code == 0, errors
