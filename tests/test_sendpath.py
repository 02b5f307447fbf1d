"""The C send path (signaling/_sendpath.c) beside its Python fallback: it is built where
it should be, sends datagrams exactly as given, and refuses bad input with an error
instead of writing or reading out of bounds."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from signaling import datagrams
from signaling.datagrams import DatagramSender
from tests.webrtc_support import WAIT

native = datagrams.native
needs_native = pytest.mark.skipif(native is None, reason="signaling._sendpath is not built")


def test_the_c_send_path_is_built_on_linux():
    if sys.platform != "linux":
        pytest.skip("the C send path is Linux only (UDP segmentation offload)")
    if native is None and not os.environ.get("CI"):
        pytest.skip("not built here: a C compiler and Python's headers are needed at install")
    assert native is not None, "make install should have built signaling._sendpath"


@pytest.fixture(params=["c", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(datagrams, "native", None)
    elif native is None:
        pytest.skip("signaling._sendpath is not built here")
    return request.param


async def receive_what_is_sent(
    host: str, sizes: list[int], send: bool | None = None
) -> tuple[bool, list[bytes], list[bytes]]:
    """Send datagrams of `sizes` (each filled with its index) from one socket to another
    through a DatagramSender; what was sent, and what arrived."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[bytes] = asyncio.Queue()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            arrived.put_nowait(data)

    receiving, _ = await loop.create_datagram_endpoint(Receiver, local_addr=(host, 0))
    sending, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(host, 0))
    sender = DatagramSender(sending, receiving.get_extra_info("sockname"))
    if send is not None:
        sender._segmented = send
    packets = [bytes([index]) * size for index, size in enumerate(sizes)]
    try:
        sent = sender.send(memoryview(b"".join(packets)), sizes)
        got = [await asyncio.wait_for(arrived.get(), WAIT) for _ in packets]
        return sent, packets, got
    finally:
        sender.close()
        sending.close()
        receiving.close()


@pytest.mark.parametrize(
    "sizes",
    [
        [1300, 1300, 1300, 900, 200, 1300, 1300, *[1200] * 40, 80],  # runs, and one > 32
        [500],
        [700, 700],
        [100, 900, 100, 900],  # no run at all
    ],
)
async def test_datagrams_arrive_as_given(implementation, sizes):
    sent, packets, got = await receive_what_is_sent("127.0.0.1", sizes)
    assert sent
    assert got == packets


async def test_datagrams_arrive_as_given_over_ipv6(implementation):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        sent, packets, got = await receive_what_is_sent("::1", [1200, 1200, 300])
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    assert sent
    assert got == packets


async def test_without_segmentation_each_datagram_goes_alone(implementation):
    sent, packets, got = await receive_what_is_sent("127.0.0.1", [1000, 1000, 400], send=False)
    assert sent
    assert got == packets


@needs_native
def test_bad_input_is_refused_not_read_or_written_out_of_bounds():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        address = native.sockaddr("127.0.0.1", 9)
        with pytest.raises(ValueError, match="more than the data"):
            native.send(a.fileno(), address, b"x" * 10, [8, 8], True)
        with pytest.raises(ValueError, match="out of range"):
            native.send(a.fileno(), address, b"x" * 10, [-1], True)
        with pytest.raises(ValueError, match="not a numeric address"):
            native.sockaddr("localhost", 9)
        with pytest.raises(ValueError, match="no room"):
            native.protect(0, 0, bytearray(100), 0, 0x80, 96, 1, 1, 0, [b"x" * 90], 0, 0, [])
        with pytest.raises(TypeError, match="bytes"):
            native.protect(0, 0, bytearray(1000), 0, 0x80, 96, 1, 1, 0, ["text"], 0, 0, [])
    finally:
        a.close()
