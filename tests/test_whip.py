"""WHIP end to end: an aiortc publisher (H.264 from aiortc's encoder, Opus from a sine)
publishes to a session's stream key over real HTTP; the session goes live, its health
says H.264, an aiortc WHEP viewer decodes video and audio, a wrong key and a second
publisher (WHIP or RTMP) are refused, and DELETE ends the publish as an RTMP disconnect
does (the session ends after its grace period)."""

from __future__ import annotations

import asyncio
import fractions
import logging
import math

import av
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from live.app import STREAMS
from media.flv import FlvDepacketizer
from media.h264 import split_annexb
from media.hub import StreamHub
from signaling.routes import WHIP, WHIP_PATH
from signaling.whip import receiver_usable
from signaling.whip_media import H264Tags, opus_samples
from tests.media_support import write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_auth import assert_problem, bearer
from tests.test_hls import assert_low_latency_rules, ffprobe
from tests.test_streaming import api_settings, eventually, has_video, push, show, status
from tests.webrtc_support import (
    DecodingViewer,
    OfferingPeer,
    keep_ice_on_loopback,
    settled,
    watch_over_whep,
)

SDP = "application/sdp"
SAMPLE_RATE = 48_000
SAMPLES = 960  # 20 ms, as browsers and OBS send Opus

__all__ = ["api_settings", "show"]  # fixtures


class SineTrack(AudioStreamTrack):
    """A 440 Hz tone, 20 ms a frame, in real time (aiortc's own track is silence)."""

    def __init__(self) -> None:
        super().__init__()
        self._sent = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paces and stamps the frame
        samples = bytearray()
        for n in range(frame.samples):
            value = int(8000 * math.sin(2 * math.pi * 440 * (self._sent + n) / SAMPLE_RATE))
            samples += value.to_bytes(2, "little", signed=True) * len(frame.layout.channels)
        self._sent += frame.samples
        frame.planes[0].update(bytes(samples))
        frame.time_base = fractions.Fraction(1, frame.sample_rate)
        return frame


class WhipPublisher(OfferingPeer):
    """An aiortc peer sending H.264 video and Opus audio, as OBS's WHIP output does."""

    def __init__(self, *, audio: bool = True) -> None:
        super().__init__()
        video = self.peer.addTransceiver(VideoStreamTrack(), direction="sendonly")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "H264"]
        )
        if audio:
            self.peer.addTransceiver(SineTrack(), direction="sendonly")
        self.keyframe_requests = 0
        sender = video.sender
        handle = sender._handle_rtcp_packet

        async def counting(packet) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                self.keyframe_requests += 1
            await handle(packet)

        sender._handle_rtcp_packet = counting


async def post_offer(api, sdp: str, key: str | None, content_type: str = SDP):
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return await api.post(WHIP_PATH, data=sdp, headers=headers)


async def publish(api, key: str) -> tuple[WhipPublisher, str]:
    publisher = WhipPublisher()
    response = await post_offer(api, await publisher.offer(), key)
    assert response.status == 201, await response.text()
    assert response.content_type == SDP
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    await publisher.accept(await response.text())
    return publisher, response.headers["Location"]


async def test_a_whip_publisher_goes_live_and_a_whep_viewer_decodes_it(
    api, show, monkeypatch, tmp_path
):
    keep_ice_on_loopback(monkeypatch)
    live_id, token = show["live"]["id"], show["token"]
    assert show["live"]["stream"]["whip_url"].endswith(WHIP_PATH)  # OBS's WHIP "Server"
    publisher, location = await publish(api, show["key"])
    viewer = DecodingViewer()
    try:
        await eventually(lambda: status(api, live_id), "live")
        await eventually(lambda: has_video(api, live_id), True)
        health = await api.get(f"/api/live-sessions/{live_id}/health", headers=bearer(token))
        report = await health.json()
        assert report["video_codec"] == "h264", report
        assert (report["width"], report["height"], report["bframes"]) == (640, 480, False)

        await watch_over_whep(api, live_id, viewer)
        await eventually(
            lambda: _async(viewer.video_frames > 10 and viewer.audio_frames > 10), True
        )
        await eventually(lambda: _async(publisher.keyframe_requests > 0), True)  # on the join
        assert viewer.video_sizes == {(640, 480)}

        hub = api.app[STREAMS].get(live_id)
        await eventually(lambda: _async(hub.audio_config is not None), True)
        assert hub.audio_config.sample_rate == 48_000  # Opus made AAC once, for recording

        # LL-HLS of the same stream: a WebRTC encoder sends keyframes only when asked,
        # so the segmenter asks for one whenever a segment runs long.
        playlist = f"/hls/{live_id}/index.m3u8"
        await eventually(lambda: _ok(api.get(playlist)), True)
        assert_low_latency_rules(await (await api.get(playlist)).text())
        url = str(api.make_url(playlist))
        streams = await asyncio.to_thread(ffprobe, url, count_frames=False)
        assert (streams["video"]["codec_name"], streams["video"]["width"]) == ("h264", 640)
        assert streams["audio"]["codec_name"] == "aac"

        deleted = await api.delete(location)
        assert deleted.status == 204
        await eventually(lambda: status(api, live_id), "ended")  # after the grace period
        await settled(lambda: viewer.ended)
        assert (await api.delete(location)).status == 404
        replay = await (await api.get(f"/api/live-sessions/{live_id}/replay")).json()
        (recording,) = replay["recordings"]
        saved = tmp_path / "replay.mp4"
        saved.write_bytes(await (await api.get(recording["video_url"])).read())
        with av.open(str(saved)) as container:
            codecs = sorted(stream.codec_context.name for stream in container.streams)
            audio = sum(1 for _ in container.decode(audio=0))
        assert codecs == ["aac", "h264"] and audio > 0  # Opus recorded as AAC
    finally:
        await viewer.close()
        await publisher.close()


async def test_wrong_keys_second_publishers_and_bad_offers_are_refused(
    api, show, monkeypatch, tmp_path
):
    keep_ice_on_loopback(monkeypatch)
    live_id = show["live"]["id"]
    refused = WhipPublisher()
    offer = await refused.offer()
    await refused.close()
    await assert_problem(await post_offer(api, offer, "not-the-key"), 401, "unknown-stream-key")
    await assert_problem(await post_offer(api, offer, None), 401, "stream-key-required")
    await assert_problem(
        await post_offer(api, offer, show["key"], "text/plain"), 415, "unsupported-media-type"
    )
    silent = WhipPublisher(audio=False)
    await assert_problem(
        await post_offer(api, await silent.offer(), show["key"]), 422, "opus-required"
    )
    await silent.close()
    assert await status(api, live_id) == "scheduled"

    publisher, _ = await publish(api, show["key"])
    try:
        await eventually(lambda: status(api, live_id), "live")
        second = WhipPublisher()
        await assert_problem(
            await post_offer(api, await second.offer(), show["key"]), 409, "already-publishing"
        )
        await second.close()
        source = write_test_flv(tmp_path / "clean.flv", seconds=1)
        code, _ = await run_ffmpeg(push(api, source, show["key"]))
        assert code != 0  # RTMP is refused while WHIP publishes
    finally:
        await publisher.close()  # the peer closing ends the publish too
    await eventually(lambda: status(api, live_id), "ended")


async def test_whip_and_whep_answer_cors_preflights(api):
    for path in (WHIP_PATH, "/api/live-sessions/x/whep"):
        response = await api.options(
            path,
            headers={
                "Origin": "https://elsewhere.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        # Only what the routes serve: there is no PATCH (no trickle ICE), so no If-Match.
        methods = response.headers["Access-Control-Allow-Methods"]
        assert set(methods.split(", ")) == {"POST", "DELETE", "OPTIONS"}
        allowed = response.headers["Access-Control-Allow-Headers"]
        assert set(allowed.split(", ")) == {"Authorization", "Content-Type"}
        assert response.headers["Access-Control-Expose-Headers"] == "Location, Link"
    for resource in (WHIP_PATH + "/x", "/api/live-sessions/x/whep/x"):
        assert (await api.patch(resource, data="a=end-of-candidates")).status == 405
    problem = await api.post("/api/live-sessions/x/whep", data="v=0", headers={"Content-Type": SDP})
    assert problem.status >= 400 and problem.headers["Access-Control-Allow-Origin"] == "*"


async def _async(value: bool) -> bool:
    return value


async def _ok(request) -> bool:
    return (await request).status == 200


async def test_keyframe_requests_reach_the_publisher_at_most_once_a_second():
    hub = StreamHub("whip")
    asked: list[None] = []
    hub.request_keyframe()  # an RTMP publisher cannot be asked: nothing happens
    hub.keyframe_source = lambda: asked.append(None)
    for _ in range(3):
        hub.request_keyframe()
    assert len(asked) == 1
    hub.pause()  # the publisher left: its way to ask goes with it
    assert hub.keyframe_source is None
    hub.close()


async def test_without_aiortcs_receiver_internals_whip_is_refused(api, monkeypatch, caplog):
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with caplog.at_level(logging.ERROR, logger="streamcart.signaling"):
        assert not await receiver_usable()
    assert "RTCRtpReceiver._send_rtcp_pli" in caplog.text and "RTMP" in caplog.text
    api.app[WHIP].usable = False
    await assert_problem(await post_offer(api, "v=0", "any-key"), 503, "whip-unavailable")


def test_access_units_become_the_tags_an_rtmp_publisher_sends():
    """What the hub's FLV parser makes of them is the stream: config, keyframe with its
    parameter sets, inter frame; nothing before the first SPS/PPS."""
    keyframe, inter = encoded_h264(640, 480, frames=2)
    tags = H264Tags()
    assert tags.tags(inter) == []
    parser = FlvDepacketizer()
    packets = [
        packet
        for access_unit in (keyframe, inter)
        for tag in tags.tags(access_unit)
        for packet in parser.video(40, tag)
    ]
    config, key, delta = packets
    assert (config.width, config.height, config.profile) == (640, 480, "Constrained Baseline")
    assert key.keyframe and (key.dts, key.pts) == (40, 40)
    assert split_annexb(key.data) == split_annexb(keyframe)
    assert not delta.keyframe and split_annexb(delta.data) == split_annexb(inter)


def encoded_h264(width: int, height: int, frames: int) -> list[bytes]:
    """Annex-B access units of libx264's Baseline output, as aiortc's encoder sends."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.profile = "Baseline"
    encoder.options = {"tune": "zerolatency"}
    units = []
    for index in range(frames):
        picture = av.VideoFrame(width, height, "yuv420p")
        picture.pts = index
        units += [bytes(packet) for packet in encoder.encode(picture)]
    return units


@pytest.mark.parametrize(
    ("packet", "samples"),
    [(b"\xfc", 960), (b"\x09", 1920), (b"\x0b\x03", 2880), (b"\x18", 2880)],
    ids=["celt-20ms", "silk-two-20ms", "silk-three-20ms", "silk-60ms"],
)
def test_opus_packets_say_their_own_duration(packet, samples):
    assert opus_samples(packet) == samples
