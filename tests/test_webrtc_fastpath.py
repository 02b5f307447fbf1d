"""The fan-out's own send path: shared RTP payloads, per-viewer headers, SRTP, segmented
sends, RTX and sender reports, against real aiortc viewers over real sockets."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

import pytest
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtp import RtcpPsfbPacket, RtcpRrPacket, RtcpRtpfbPacket, RtcpSdesPacket, RtpPacket

from media.transcode import OPUS_FRAME_SAMPLES
from signaling.adapters import Incompatible
from signaling.adapters.aiortc_private import SenderHooks, only_reports
from signaling.rtp import datagrams, srtp_frames
from signaling.rtp.datagrams import DatagramSender
from signaling.rtp.rtp_sender import RETRANSMISSIONS_PER_SECOND, ViewerRtpSender
from tests import test_whep
from tests.media_support import publish
from tests.test_whep import FPS, SPEED
from tests.webrtc_support import WAIT, DecodingViewer, eventually, settled

loopback_only = test_whep.loopback_only  # the WHEP tests' fixtures, used here too
make_server = test_whep.make_server

SPS, PPS, IDR, STAP_A, FU_A = 7, 8, 5, 24, 28
RTCP_RR, RTCP_RTPFB = 201, 205
PUBLISHED_FRAMES = 3 * FPS


def h264_payload_type(answer: str) -> int:
    match = re.search(r"a=rtpmap:(\d+) H264/90000", answer)
    assert match is not None, answer
    return int(match.group(1))


def tap(viewer: DecodingViewer, keep: Callable[[RtpPacket], bool]) -> None:
    """Show every RTP packet the viewer receives (after SRTP) to `keep`; False drops it."""
    dtls = viewer.peer.getTransceivers()[0].receiver.transport
    handle = dtls._handle_rtp_data

    async def tapped(data: bytes, arrival_time_ms: int) -> None:
        if keep(RtpPacket.parse(data)):
            await handle(data, arrival_time_ms)

    dtls._handle_rtp_data = tapped


def first_nal_type(payload: bytes) -> int:
    if payload[0] & 0x1F == STAP_A:
        return payload[3] & 0x1F
    if payload[0] & 0x1F == FU_A:
        return payload[1] & 0x1F
    return payload[0] & 0x1F


async def negotiate(server, viewer: DecodingViewer) -> str:
    response = await server.post_offer(await viewer.offer())
    assert response.status == 201, await response.text()
    return await response.text()


async def connect(viewer: DecodingViewer, answer: str) -> None:
    await viewer.accept(answer)
    assert await eventually(lambda: viewer.connected)


def fanout_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "StreamFanout._run" in repr(t.get_coro())]


@pytest.mark.parametrize("send_path", ["c", "python"])
async def test_several_viewers_decode_one_packetizing_and_close_cleanly(
    make_server, stream_tags, send_path, monkeypatch
):
    if send_path == "python":  # where signaling.rtp._sendpath was not built
        monkeypatch.setattr(srtp_frames, "native", None)
        monkeypatch.setattr(datagrams, "native", None)
    elif srtp_frames.native is None:
        pytest.skip("signaling.rtp._sendpath is not built here")
    server = await make_server()
    hub = server.open_stream()
    viewers = [DecodingViewer() for _ in range(3)]
    try:
        for viewer in viewers:
            await server.watch(viewer)
        assert len(server.subscriptions) == 1  # one hub reader for all three
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: [(v.video_frames, v.audio_frames) for v in viewers])
        for viewer in viewers:
            assert viewer.video_frames >= 0.9 * PUBLISHED_FRAMES
            assert viewer.video_sizes == {(320, 240)}
            assert viewer.audio_frames > 0
        assert len(fanout_tasks()) == 1
        (fanout,) = server.service._fanouts.values()
        assert fanout.served_natively == (6 if send_path == "c" else 0)  # audio and video
    finally:
        for viewer in viewers:
            await viewer.close()
    assert await eventually(lambda: len(server.service) == 0)
    assert await server.all_subscriptions_closed()
    assert await eventually(lambda: not fanout_tasks())


async def test_a_stalled_viewer_does_not_hold_back_the_others(make_server, stream_tags):
    server = await make_server()
    hub = server.open_stream()
    stalled, healthy = DecodingViewer(), DecodingViewer()
    never = asyncio.Event()
    try:
        answer = await negotiate(server, stalled)
        dtls = stalled.peer.getTransceivers()[0].receiver.transport
        handle = dtls._handle_rtp_data

        async def stuck(data: bytes, arrival_time_ms: int) -> None:
            await never.wait()  # its receive loop stops here for good
            await handle(data, arrival_time_ms)

        dtls._handle_rtp_data = stuck
        await connect(stalled, answer)
        await server.watch(healthy)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: healthy.video_frames)
        assert stalled.video_frames == 0
        assert healthy.video_frames >= 0.9 * PUBLISHED_FRAMES
    finally:
        never.set()
        await stalled.close()
        await healthy.close()


async def test_a_viewer_joining_mid_stream_starts_on_a_keyframe(make_server, stream_tags):
    server = await make_server()
    hub = server.open_stream()
    publisher = asyncio.create_task(publish(hub, stream_tags, speed=1.0))
    early, late = DecodingViewer(), DecodingViewer()
    first_video: list[RtpPacket] = []
    sequence_numbers: list[int] = []
    timestamps_seen: list[int] = []
    try:
        await server.watch(early)
        await asyncio.sleep(1.5)  # halfway into the second GOP
        answer = await negotiate(server, late)
        video = h264_payload_type(answer)

        def record(packet: RtpPacket) -> bool:
            if packet.payload_type == video:
                if not first_video:
                    first_video.append(packet)
                sequence_numbers.append(packet.sequence_number)
                timestamps_seen.append(packet.timestamp)
            return True

        tap(late, record)
        await connect(late, answer)
        assert await eventually(lambda: late.video_frames > 0)
        assert first_nal_type(first_video[0].payload) in {SPS, PPS, IDR}
        assert late.video_sizes == {(320, 240)}
        # the cached GOP is sent from Python, the rest from C: one unbroken sequence of
        # packets (SRTP's replay check would drop any repeated number) and of frames
        assert await eventually(lambda: late.video_frames > 40)
        start = sequence_numbers[0]
        assert sequence_numbers == [(start + i) & 0xFFFF for i in range(len(sequence_numbers))]
        timestamps = list(dict.fromkeys(timestamps_seen))
        steps = {(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(timestamps)}
        assert max(steps) < 1.5 * 90_000 / FPS, sorted(steps)
    finally:
        publisher.cancel()
        await early.close()
        await late.close()


async def test_lost_video_packets_come_back_over_rtx(make_server, stream_tags):
    server = await make_server()
    hub = server.open_stream()
    viewer = DecodingViewer()
    try:
        answer = await negotiate(server, viewer)
        video = h264_payload_type(answer)
        originals = 0
        lost = 0
        send_times = set()

        def lose_every_tenth(packet: RtpPacket) -> bool:
            nonlocal originals, lost
            send_times.add(packet.extensions.abs_send_time)
            if packet.payload_type != video:
                return True  # audio, and the retransmissions (RTX payload type)
            originals += 1
            if originals % 10:
                return True
            lost += 1
            return False

        tap(viewer, lose_every_tenth)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.video_frames)
        assert lost >= 10
        assert viewer.video_frames >= 0.9 * PUBLISHED_FRAMES
        assert send_times == {None}  # negotiated, never written: it only feeds REMB
    finally:
        await viewer.close()


async def test_a_viewer_flooding_nacks_is_held_to_its_budget_and_the_others_play_on(
    make_server, stream_tags, caplog
):
    """One NACK packet can ask for hundreds of retransmissions: a viewer sending 400 of
    them a second, each for every packet it has had, gets at most RTCP_PER_SECOND of
    them handled and RETRANSMISSIONS_PER_SECOND retransmissions; another viewer is not
    held back."""
    server = await make_server()
    hub = server.open_stream()
    flooder, healthy = DecodingViewer(audio=False), DecodingViewer()
    try:
        answer = await negotiate(server, flooder)
        video = h264_payload_type(answer)
        seen: list[tuple[int, int]] = []  # (SSRC, sequence number) of the originals
        retransmitted = 0

        def record(packet: RtpPacket) -> bool:
            nonlocal retransmitted
            if packet.payload_type == video:
                seen.append((packet.ssrc, packet.sequence_number))
            else:
                retransmitted += 1  # video only: anything else is RTX
            return True

        tap(flooder, record)
        await connect(flooder, answer)
        await server.watch(healthy)
        publisher = asyncio.create_task(publish(hub, stream_tags, speed=SPEED))
        assert await eventually(lambda: len(seen) > 60)
        receiver = flooder.peer.getTransceivers()[0].receiver
        started = time.monotonic()
        for _ in range(100):  # about 4 x 100 a second, for 1 s
            lost = sorted({number for _, number in seen})
            for _ in range(4):
                await receiver._send_rtcp_nack(seen[-1][0], lost)
            await asyncio.sleep(0.01)
        await publisher
        await settled(lambda: healthy.video_frames)
        elapsed = time.monotonic() - started
        assert healthy.video_frames >= 0.9 * PUBLISHED_FRAMES
        assert 0 < retransmitted <= RETRANSMISSIONS_PER_SECOND * (elapsed + 1)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("RTCP packets a second" in message for message in warnings), warnings
        assert any("retransmissions a second" in message for message in warnings), warnings
    finally:
        await flooder.close()
        await healthy.close()


async def test_a_failure_handling_a_viewers_nack_is_logged_and_the_viewer_plays_on(
    make_server, stream_tags, monkeypatch, caplog
):
    async def failing(self: ViewerRtpSender, sequence_number: int) -> None:
        raise RuntimeError("retransmission failed")

    monkeypatch.setattr(ViewerRtpSender, "_retransmit", failing)
    async with video_viewer(make_server) as (hub, viewer, answer, video):
        originals = 0

        def lose_one(packet: RtpPacket) -> bool:
            nonlocal originals
            originals += packet.payload_type == video
            return originals != 20

        tap(viewer, lose_one)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.video_frames)
        failures = [r for r in caplog.records if "RTCP failed" in r.getMessage()]
        assert failures and "retransmission failed" in str(failures[0].exc_info[1])
        assert viewer.connected
        assert originals >= PUBLISHED_FRAMES  # still sent to after the failure


async def test_a_burst_of_lost_packets_comes_back_in_one_send(
    make_server, stream_tags, monkeypatch
):
    retransmission_sends: list[int] = []
    send, gathered = DatagramSender.send, ViewerRtpSender._send_retransmissions
    flushing = False

    def recording(self: DatagramSender, data: memoryview, sizes: list[int]) -> bool:
        if flushing:
            retransmission_sends.append(len(sizes))
        return send(self, data, sizes)

    def flush(self: ViewerRtpSender, path) -> None:
        nonlocal flushing
        flushing = True
        try:
            gathered(self, path)
        finally:
            flushing = False

    monkeypatch.setattr(DatagramSender, "send", recording)
    monkeypatch.setattr(ViewerRtpSender, "_send_retransmissions", flush)
    async with video_viewer(make_server) as (hub, viewer, answer, video):
        originals = 0

        def lose_bursts(packet: RtpPacket) -> bool:
            nonlocal originals
            if packet.payload_type != video:
                return True  # the retransmissions
            originals += 1
            return not 10 <= originals % 40 < 14  # four in a row, every 40

        tap(viewer, lose_bursts)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.video_frames)
        assert viewer.video_frames >= 0.9 * PUBLISHED_FRAMES
        assert retransmission_sends and max(retransmission_sends) >= 2


async def test_receiver_reports_stop_at_the_socket_and_nacks_still_reach_aiortc(
    make_server, stream_tags, monkeypatch
):
    """Receiver reports are dropped before aiortc's queue (`ReportFilter`); the NACKs of
    a viewer that loses packets still reach aiortc's handler and are answered."""
    server_side: list[int] = []  # RTCP packet types aiortc's server-side handler got
    reports_sent = 0
    handle = RTCDtlsTransport._handle_rtcp_data
    send_report = RTCRtpReceiver._send_rtcp

    async def handled(self: RTCDtlsTransport, data: bytes) -> None:
        if self is not viewer_dtls:
            server_side.extend(packet_types(data))
        await handle(self, data)

    async def sent(self: RTCRtpReceiver, packet) -> None:
        nonlocal reports_sent
        reports_sent += isinstance(packet, RtcpRrPacket)
        await send_report(self, packet)

    monkeypatch.setattr(RTCDtlsTransport, "_handle_rtcp_data", handled)
    monkeypatch.setattr(RTCRtpReceiver, "_send_rtcp", sent)
    async with video_viewer(make_server) as (hub, viewer, answer, video):
        viewer_dtls = viewer.peer.getTransceivers()[0].receiver.transport
        originals = 0

        def lose_some(packet: RtpPacket) -> bool:
            nonlocal originals
            originals += packet.payload_type == video
            return packet.payload_type != video or originals % 25 != 10

        tap(viewer, lose_some)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.video_frames)
        assert viewer.video_frames >= 0.9 * PUBLISHED_FRAMES
        assert reports_sent >= 1
        assert RTCP_RR not in server_side
        assert RTCP_RTPFB in server_side  # the NACKs


@pytest.mark.parametrize(
    ("compound", "dropped"),
    [
        (bytes(RtcpRrPacket(ssrc=1)), True),
        (bytes(RtcpRrPacket(ssrc=1)) + bytes(RtcpSdesPacket()), True),
        (
            bytes(RtcpRrPacket(ssrc=1))
            + bytes(RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[5])),
            False,
        ),
        (bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2)), False),
        (bytes(RtcpRrPacket(ssrc=1))[:-1], False),  # malformed: aiortc says so
        (b"", False),
    ],
)
def test_only_receiver_reports_and_descriptions_are_dropped(compound, dropped):
    assert only_reports(compound) is dropped


def packet_types(compound: bytes) -> list[int]:
    types, at = [], 0
    while at + 4 <= len(compound):
        types.append(compound[at + 1])
        at += 4 * (int.from_bytes(compound[at + 2 : at + 4], "big") + 1)
    return types


@asynccontextmanager
async def video_viewer(make_server):
    """A stream and one video-only viewer negotiated with it (not yet connected):
    (hub, viewer, answer, video payload type)."""
    server = await make_server()
    hub = server.open_stream()
    viewer = DecodingViewer(audio=False)
    try:
        answer = await negotiate(server, viewer)
        yield hub, viewer, answer, h264_payload_type(answer)
    finally:
        await viewer.close()


async def test_sender_reports_count_what_was_sent(make_server, stream_tags):
    async with video_viewer(make_server) as (hub, viewer, answer, video):
        received = {"packets": 0, "octets": 0}

        def count(packet: RtpPacket) -> bool:
            if packet.payload_type == video:
                received["packets"] += 1
                received["octets"] += len(packet.payload)
            return True

        tap(viewer, count)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.video_frames)
        receiver = viewer.peer.getTransceivers()[0].receiver
        deadline = time.monotonic() + WAIT
        reported: dict[str, int] = {}
        while time.monotonic() < deadline:  # sender reports come about once a second
            for stats in (await receiver.getStats()).values():
                if stats.type == "remote-outbound-rtp":
                    reported = {"packets": stats.packetsSent, "octets": stats.bytesSent}
            if reported == received:
                break
            await asyncio.sleep(0.2)
        assert received["packets"] > PUBLISHED_FRAMES
        assert reported == received


async def test_audio_leaves_in_60_ms_packets_and_arrives_whole_and_in_order(
    make_server, stream_tags
):
    server = await make_server()
    hub = server.open_stream()
    viewer = DecodingViewer()
    try:
        answer = await negotiate(server, viewer)
        match = re.search(r"a=rtpmap:(\d+) opus/48000", answer)
        assert match is not None, answer
        opus = int(match.group(1))
        audio: list[RtpPacket] = []

        def record(packet: RtpPacket) -> bool:
            if packet.payload_type == opus:
                audio.append(packet)
            return True

        tap(viewer, record)
        await connect(viewer, answer)
        await publish(hub, stream_tags, speed=SPEED)
        await settled(lambda: viewer.audio_frames)
        assert len(audio) > 10
        first = audio[0].sequence_number
        assert [p.sequence_number for p in audio] == [
            (first + i) & 0xFFFF for i in range(len(audio))
        ]
        steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(audio)}
        assert steps == {OPUS_FRAME_SAMPLES}
        assert OPUS_FRAME_SAMPLES == 48_000 * 60 // 1000
        assert viewer.audio_frames >= 0.9 * len(audio)  # the last few wait in its buffer
    finally:
        await viewer.close()


async def test_aiortc_still_has_the_internals_the_send_path_uses():
    peer = RTCPeerConnection()
    try:
        transceiver = peer.addTransceiver("video", direction="sendonly")
        hooks = SenderHooks(transceiver.sender)
        assert hooks.ssrc != hooks.rtx_ssrc
        with pytest.raises(Incompatible):
            SenderHooks(object())  # type: ignore[arg-type]
        assert callable(RTCRtpSender._run_rtp) and callable(RTCRtpSender._retransmit)
    finally:
        await peer.close()
