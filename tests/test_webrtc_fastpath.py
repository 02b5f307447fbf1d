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
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.rtp import RtpPacket

from signaling import datagrams, srtp_frames
from signaling.aiortc_hooks import AiortcIncompatible, SenderHooks
from signaling.datagrams import DatagramSender
from signaling.rtp_sender import ViewerRtpSender
from tests import test_whep
from tests.media_support import publish
from tests.test_whep import FPS, SPEED
from tests.webrtc_support import WAIT, DecodingViewer, eventually, settled

loopback_only = test_whep.loopback_only  # the WHEP tests' fixtures, used here too
make_server = test_whep.make_server
stream_tags = test_whep.stream_tags

SPS, PPS, IDR, STAP_A, FU_A = 7, 8, 5, 24, 28
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
    if send_path == "python":  # where signaling._sendpath was not built
        monkeypatch.setattr(srtp_frames, "native", None)
        monkeypatch.setattr(datagrams, "native", None)
    elif srtp_frames.native is None:
        pytest.skip("signaling._sendpath is not built here")
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


async def test_audio_leaves_in_pairs_and_arrives_whole_and_in_order(
    make_server, stream_tags, monkeypatch
):
    sends: list[list[int]] = []
    send = DatagramSender.send

    def recording(self: DatagramSender, data: memoryview, sizes: list[int]) -> bool:
        sends.append(list(sizes))
        return send(self, data, sizes)

    monkeypatch.setattr(DatagramSender, "send", recording)
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
        assert len(audio) > 20
        first = audio[0].sequence_number
        assert [p.sequence_number for p in audio] == [
            (first + i) & 0xFFFF for i in range(len(audio))
        ]
        steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(audio)}
        assert steps == {960}  # 20 ms apart, padding or not
        assert viewer.audio_frames >= 0.9 * len(audio)  # the last few wait in its buffer
        assert any(len(sizes) == 2 and max(sizes) < 500 for sizes in sends)
    finally:
        await viewer.close()


async def test_aiortc_still_has_the_internals_the_send_path_uses():
    peer = RTCPeerConnection()
    try:
        transceiver = peer.addTransceiver("video", direction="sendonly")
        hooks = SenderHooks(transceiver.sender)
        assert hooks.ssrc != hooks.rtx_ssrc
        with pytest.raises(AiortcIncompatible):
            SenderHooks(object())  # type: ignore[arg-type]
        assert callable(RTCRtpSender._run_rtp) and callable(RTCRtpSender._retransmit)
    finally:
        await peer.close()
