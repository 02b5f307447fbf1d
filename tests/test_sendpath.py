"""The C send path (signaling/rtp/_sendpath.c) beside its Python fallback: it is built where
it should be, sends datagrams exactly as given, and refuses bad input with an error
instead of writing or reading out of bounds."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import types

import pytest

from signaling.adapters.pylibsrtp_private import SrtpAddresses
from signaling.rtp import datagrams
from signaling.rtp.datagrams import DatagramSender
from tests.webrtc_support import WAIT

native = datagrams.native
needs_native = pytest.mark.skipif(native is None, reason="signaling.rtp._sendpath is not built")


def test_the_c_send_path_is_built_on_linux():
    if sys.platform != "linux":
        pytest.skip("the C send path is Linux only (UDP segmentation offload)")
    if native is None and not os.environ.get("CI"):
        pytest.skip("not built here: a C compiler and Python's headers are needed at install")
    assert native is not None, "make install should have built signaling.rtp._sendpath"


@pytest.fixture(params=["c", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(datagrams, "native", None)
    elif native is None:
        pytest.skip("signaling.rtp._sendpath is not built here")
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


def protect_frame(buffer: bytearray, bodies: list, srtp: object = None) -> int:
    """The C protect of `bodies` at the start of `buffer` (the addresses are never used:
    each call here is refused before libsrtp is called)."""
    return native.protect(
        srtp=srtp or SrtpAddresses(protect=1, protect_rtcp=1, context=1),
        buffer=buffer,
        offset=0,
        first_byte=0x80,
        payload_type=96,
        ssrc=1,
        sequence=1,
        timestamp=0,
        bodies=bodies,
        marker_index=0,
        sizes=[],
    )


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
            protect_frame(bytearray(100), [b"x" * 90])
        with pytest.raises(TypeError, match="bytes"):
            protect_frame(bytearray(1000), ["text"])
    finally:
        a.close()


@needs_native
def test_addresses_and_arguments_are_taken_by_name_only():
    """libsrtp's addresses cross into C as a number each: by position, one mistake in
    the order would hand it a context for a function. They go by name, or not at all."""
    with pytest.raises(TypeError, match="keyword arguments only"):
        native.protect(SrtpAddresses(1, 1, 1), bytearray(1000), 0)
    with pytest.raises(TypeError, match="keyword arguments only"):
        native.ViewerState(1, 2, 3, 4)
    with pytest.raises(AttributeError, match="protect"):
        protect_frame(bytearray(1000), [b"x"], srtp=(1, 1, 1))  # a bare tuple names nothing
    with pytest.raises(ValueError, match=r"srtp\.context is a null address"):
        protect_frame(bytearray(1000), [b"x"], SrtpAddresses(protect=1, protect_rtcp=1, context=0))
    outbound, inbound = srtp_pair()
    from signaling.rtp.srtp_frames import FrameProtector

    srtp = FrameProtector(outbound).srtp
    buffer, sizes = bytearray(1000), []
    reordered = types.SimpleNamespace(
        context=srtp.context, protect_rtcp=srtp.protect_rtcp, protect=srtp.protect
    )
    end = native.protect(
        sizes=sizes, marker_index=0, bodies=[b"hello"], timestamp=0, sequence=1, ssrc=1,
        payload_type=96, first_byte=0x80, offset=0, buffer=buffer, srtp=reordered,
    )  # fmt: skip
    assert end == sizes[0] > 12 + 5
    assert inbound.unprotect(bytes(buffer[:end]))[12:] == b"hello"


def srtp_pair() -> tuple[object, object]:
    from pylibsrtp import Policy, Session

    key = os.urandom(28)
    sessions = []
    for direction in (Policy.SSRC_ANY_OUTBOUND, Policy.SSRC_ANY_INBOUND):
        policy = Policy(
            key=key, ssrc_type=direction, srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM
        )
        policy.allow_repeat_tx = True
        sessions.append(Session(policy))
    return sessions[0], sessions[1]


def viewer_state(
    protector: object,
    sending: socket.socket,
    to: tuple[str, int],
    first_byte: int = 0x80,
    payload_type: int = 96,
    ssrc: int = 1,
    sequence: int = 0,
    offset: int = 0,
    counts: tuple[int, int] = (0, 0),
) -> object:
    return native.ViewerState(
        srtp=protector.srtp,
        fd=sending.fileno(),
        address=native.sockaddr(*to),
        segmented=True,
        first_byte=first_byte,
        payload_type=payload_type,
        ssrc=ssrc,
        sequence=sequence,
        timestamp_offset=offset,
        cname=b"viewer-cname",
        packets=counts[0],
        octets=counts[1],
    )


@needs_native
def test_fan_out_sends_each_viewer_its_own_packets_and_remembers_them():
    from aiortc.rtp import RtpPacket

    from signaling.rtp.srtp_frames import FrameProtector

    receivers, viewers, inbound, outbound_sessions = [], [], [], []
    sending = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for index, (sequence, offset) in enumerate([(65530, 10), (7, -90_000)]):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(WAIT)
            outbound, incoming = srtp_pair()
            viewers.append(
                viewer_state(
                    FrameProtector(outbound), sending, receiver.getsockname(), 0x80, 96 + index,
                    1000 + index, sequence, offset,
                )
            )  # fmt: skip
            outbound_sessions.append(outbound)  # its context must outlive the state
            receivers.append(receiver)
            inbound.append(incoming)
        video = [b"v" * 1200, b"v" * 1200, b"w" * 500]
        # the video frame paced in two runs: only the second ends it (the marker bit)
        assert native.fan_out(viewers, (40, 9000, True, 123 << 32, 2400, video[:2], False)) == []
        assert native.fan_out(viewers, (41, 9000, True, 123 << 32, 500, video[2:], True)) == []
        assert native.fan_out(viewers, (42, 48_000, True, 124 << 32, 60, [b"a" * 60], True)) == []
        assert native.fan_out(viewers, (43, 48_960, True, 0, 90, [b"b" * 90], True)) == []
        for index, (viewer, receiver, session) in enumerate(
            zip(viewers, receivers, inbound, strict=True)
        ):
            packets = [RtpPacket.parse(session.unprotect(receiver.recv(2048))) for _ in range(5)]
            first = (65530, 7)[index]
            offset = (10, -90_000)[index]
            assert [p.sequence_number for p in packets] == [(first + i) & 0xFFFF for i in range(5)]
            assert {p.ssrc for p in packets} == {1000 + index}
            assert {p.payload_type for p in packets} == {96 + index}
            assert [p.marker for p in packets] == [0, 0, 1, 1, 1]
            assert [p.timestamp for p in packets[2:]] == [
                (ticks + offset) & 0xFFFFFFFF for ticks in (9000, 48_000, 48_960)
            ]
            assert [p.payload for p in packets] == [*video, b"a" * 60, b"b" * 90]
            assert viewer.history() == [
                (43, (first + 4) & 0xFFFF),
                (42, (first + 3) & 0xFFFF),
                (41, (first + 2) & 0xFFFF),
                (40, first),
            ]
            assert (viewer.packets, viewer.octets) == (5, 3050)
            assert viewer.rtp_timestamp == (48_960 + offset) & 0xFFFFFFFF
            assert viewer.sequence == (first + 5) & 0xFFFF
            assert viewer.wire_packets == 5 and viewer.wire_octets > 3050 + 5 * 12
    finally:
        sending.close()
        for receiver in receivers:
            receiver.close()


@needs_native
def test_fan_out_batches_viewers_of_one_socket_and_keeps_each_ones_packets():
    """Viewers on one socket go out in one sendmmsg per batch (a batch holds 1,024
    messages: 300 viewers of 4 unequal packets make two); viewers on another socket, and
    one libsrtp refuses, in between, break a batch without losing anything."""
    from aiortc.rtp import RtpPacket

    from signaling.rtp.srtp_frames import FrameProtector

    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receivers, viewers, keep, refused = [], [], [], None
    try:
        for index in range(300):
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.settimeout(WAIT)
            outbound, inbound = srtp_pair()
            sending = other if index % 50 == 49 else shared
            first_byte = 0x90 if index == 150 else 0x80  # 0x90: refused by libsrtp
            viewer = viewer_state(
                FrameProtector(outbound), sending, receiver.getsockname(), first_byte,
                ssrc=index, sequence=index,
            )  # fmt: skip
            keep.append(outbound)
            receivers.append((receiver, inbound))
            viewers.append(viewer)
            refused = viewer if index == 150 else refused
        bodies = [b"a" * 100, b"b" * 200, b"c" * 300, b"d" * 400]
        assert native.fan_out(viewers, (7, 9000, True, 0, 1000, bodies, True)) == [refused]
        for index, (receiver, inbound) in enumerate(receivers):
            if index == 150:
                continue
            packets = [RtpPacket.parse(inbound.unprotect(receiver.recv(2048))) for _ in bodies]
            assert [p.payload for p in packets] == bodies, index
            assert [p.sequence_number for p in packets] == [index + i for i in range(4)]
            assert {p.ssrc for p in packets} == {index}
            assert viewers[index].history() == [(7, index)]
            assert viewers[index].wire_packets == 4
        assert refused.packets == 0 and refused.history() == []
    finally:
        for sock in (shared, other, *(r for r, _ in receivers)):
            sock.close()


@needs_native
def test_fan_out_refuses_bad_frames_and_reports_a_viewer_libsrtp_refuses():
    from signaling.rtp.srtp_frames import FrameProtector

    outbound, _ = srtp_pair()
    sending = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # the extension bit without an extension header: libsrtp refuses it
        viewer = viewer_state(FrameProtector(outbound), sending, ("127.0.0.1", 9), 0x90)
        with pytest.raises(TypeError, match="a frame"):
            native.fan_out([viewer], (1, 0, True))
        with pytest.raises(ValueError, match="at least one packet"):
            native.fan_out([viewer], (1, 0, True, 0, 0, [], True))
        with pytest.raises(TypeError, match="bytes"):
            native.fan_out([viewer], (1, 0, True, 0, 1, ["x"], True))
        with pytest.raises(TypeError, match="ViewerState"):
            native.fan_out([object()], (1, 0, True, 0, 1, [b"x"], True))
        assert native.fan_out([viewer], (1, 0, True, 0, 1, [b"\x00"], True)) == [viewer]
        assert viewer.srtp_error == 1 and viewer.error != 0
        assert native.fan_out([viewer], (2, 0, True, 0, 1, [b"\x00"], True)) == []  # skipped now
        assert viewer.packets == 0 and viewer.history() == []
    finally:
        sending.close()


@needs_native
def test_report_sends_a_sender_report_with_the_cname_over_srtcp():
    from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

    from signaling.rtp.srtp_frames import FrameProtector

    outbound, inbound = srtp_pair()
    sending = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(WAIT)
        protector = FrameProtector(outbound)
        viewer = viewer_state(
            protector, sending, receiver.getsockname(), ssrc=77, offset=5, counts=(10, 1000)
        )
        assert native.report([viewer]) == []  # nothing sent yet: no report
        ntp = (3_900_000_000 << 32) | 0x12345678
        assert native.fan_out([viewer], (1, 9000, True, ntp, 300, [b"x" * 300], True)) == []
        receiver.recv(2048)  # the RTP packet
        assert native.report([viewer]) == []
        sr, sdes = RtcpPacket.parse(inbound.unprotect_rtcp(receiver.recv(2048)))
        assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
        assert sr.ssrc == 77
        info = sr.sender_info
        assert (info.ntp_timestamp, info.rtp_timestamp) == (ntp, 9005)
        assert (info.packet_count, info.octet_count) == (11, 1300)  # counts include the base
        assert sdes.chunks[0].ssrc == 77
        assert sdes.chunks[0].items == [(1, b"viewer-cname")]
    finally:
        sending.close()
        receiver.close()
