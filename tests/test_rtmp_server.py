"""The asyncio RTMP server with real sockets: the Debian ffmpeg CLI as the publisher,
and a scripted client for refusals, timeouts and hostile input."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
import uvloop

from rtmp_ingest import Limits, MediaSink, RtmpServer
from rtmp_ingest.messages import SET_CHUNK_SIZE, VIDEO
from tests.rtmp_support import (
    C1,
    STREAM_KEY,
    Authorizer,
    RawClient,
    RecordingSink,
    chunked,
    command,
    control,
    ffmpeg_publish_args,
    run_ffmpeg,
)

AUDIO_AAC = 0xAF


@pytest.fixture
async def authorizer():
    return Authorizer()


@pytest.fixture
async def server(authorizer):
    rtmp = RtmpServer("127.0.0.1", 0, authorizer, handshake_timeout=5.0, idle_timeout=5.0)
    await rtmp.start()
    yield rtmp
    await rtmp.stop()


async def test_ffmpeg_publishes_metadata_avc_and_aac_then_closes(server, authorizer):
    code, stderr = await run_ffmpeg(ffmpeg_publish_args(server.port, STREAM_KEY, 2))
    assert code == 0, stderr
    assert authorizer.calls == [("live", STREAM_KEY)]
    sink = authorizer.sinks[0]
    async with asyncio.timeout(10):
        await sink.closed.wait()
    assert sink.close_calls == 1
    assert sink.metadata[0]["width"] == 320.0
    assert sink.metadata[0]["videocodecid"] == 7.0
    first_video = sink.video[0][1]
    assert first_video[0] == 0x17 and first_video[1] == 0  # AVC sequence header first
    frames = [payload for _, payload in sink.video if payload[1] == 1]
    keyframes = [payload for payload in frames if payload[0] >> 4 == 1]
    assert len(frames) >= 55  # 2 s at 30 fps
    assert len(keyframes) >= 2  # -g 30
    assert sink.audio[0][1][:2] == bytes([AUDIO_AAC, 0])  # AudioSpecificConfig
    assert sum(1 for _, p in sink.audio if p[:2] == bytes([AUDIO_AAC, 1])) >= 60
    video_times = [t for t, p in sink.video if p[1] == 1]
    assert video_times == sorted(video_times) and video_times[-1] > video_times[0] + 1500
    audio_times = [t for t, _ in sink.audio]
    assert audio_times == sorted(audio_times) and audio_times[-1] > 1500


async def test_wrong_key_is_refused_before_any_media(server, authorizer):
    code, stderr = await run_ffmpeg(ffmpeg_publish_args(server.port, "wrong-key", 2))
    assert code != 0
    assert "Unknown stream key." in stderr
    assert authorizer.calls == [("live", "wrong-key")]
    assert authorizer.sinks == []


async def test_refusal_is_a_bad_name_status_then_close(server, caplog):
    caplog.set_level(logging.INFO, "streamcart.rtmp")
    client = await RawClient.open(server.port)
    status = await client.publish("wrong-key")
    assert status == {
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "Unknown stream key.",
    }
    await client.until_closed()
    assert any("BadName" in r.getMessage() for r in caplog.records)


async def test_play_is_refused(server):
    client = await RawClient.open(server.port)
    await client.connect()
    await client.send(
        command("createStream", 2.0, None) + command("play", 3.0, None, "x", stream_id=1)
    )
    status = await client.until_status()
    assert (status["level"], status["code"]) == ("error", "NetStream.Play.Failed")
    await client.until_closed()


async def test_disconnect_closes_the_sink_once(server, authorizer):
    client = await RawClient.open(server.port)
    status = await client.publish()
    assert status["code"] == "NetStream.Publish.Start"
    await client.send(chunked(4, VIDEO, b"\x17\x00\x00\x00\x00seq", stream_id=1))
    sink = authorizer.sinks[0]
    async with asyncio.timeout(5):
        await sink.got_video.wait()
    client.close()
    async with asyncio.timeout(5):
        await sink.closed.wait()
    assert sink.close_calls == 1
    assert sink.video == [(0, b"\x17\x00\x00\x00\x00seq")]


async def test_stop_closes_every_connection_and_sink(authorizer):
    rtmp = RtmpServer("127.0.0.1", 0, authorizer)
    await rtmp.start()
    publisher = await RawClient.open(rtmp.port)
    await publisher.publish()
    idle = await RawClient.open(rtmp.port)
    await idle.handshake()
    await rtmp.stop()
    assert authorizer.sinks[0].close_calls == 1
    await publisher.until_closed()
    await idle.until_closed()


async def test_authorize_failure_is_a_publish_failed_status(caplog):
    async def broken(app: str, key: str) -> MediaSink:
        raise RuntimeError("database down")

    rtmp = RtmpServer("127.0.0.1", 0, broken)
    await rtmp.start()
    try:
        client = await RawClient.open(rtmp.port)
        status = await client.publish()
        assert (status["level"], status["code"]) == ("error", "NetStream.Publish.Failed")
        await client.until_closed()
    finally:
        await rtmp.stop()


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x06" + C1,  # encrypted RTMP version
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(2000),
    ],
)
async def test_bad_handshake_is_logged_in_one_line_and_closed(server, caplog, hostile):
    caplog.set_level(logging.WARNING, "streamcart.rtmp")
    client = await RawClient.open(server.port)
    await client.send(hostile)
    await client.until_closed()
    lines = [r.getMessage() for r in caplog.records if r.name == "streamcart.rtmp"]
    assert len(lines) == 1 and "version" in lines[0] and "\n" not in lines[0]


async def test_oversized_chunk_size_closes_only_that_connection(server, authorizer, caplog):
    caplog.set_level(logging.WARNING, "streamcart.rtmp")
    good = await RawClient.open(server.port)
    await good.publish()
    bad = await RawClient.open(server.port)
    await bad.publish()
    await bad.send(control(SET_CHUNK_SIZE, struct.pack(">I", 0x7FFFFFFF)))
    await bad.until_closed()
    assert any("chunk size" in r.getMessage() for r in caplog.records)
    assert authorizer.sinks[1].close_calls == 1
    await good.send(chunked(4, VIDEO, b"\x17\x01still here", stream_id=1))
    async with asyncio.timeout(5):
        await authorizer.sinks[0].got_video.wait()
    assert authorizer.sinks[0].close_calls == 0


async def test_silent_and_slow_clients_time_out(authorizer, caplog):
    caplog.set_level(logging.WARNING, "streamcart.rtmp")
    rtmp = RtmpServer("127.0.0.1", 0, authorizer, handshake_timeout=0.5, idle_timeout=0.3)
    await rtmp.start()
    try:
        silent = await RawClient.open(rtmp.port)
        slow = await RawClient.open(rtmp.port)  # one byte at a time, never finishing
        with pytest.raises(ConnectionError):
            for byte in b"\x03" + C1[:200]:  # would take 10 s
                await slow.send(bytes([byte]))
                await asyncio.sleep(0.05)
        publisher = await RawClient.open(rtmp.port)
        await publisher.publish()
        await silent.until_closed()
        await slow.until_closed()
        await publisher.until_closed()  # idle after publishing
        assert authorizer.sinks[0].close_calls == 1
        reasons = " ".join(r.getMessage() for r in caplog.records)
        assert "not publishing" in reasons and "idle" in reasons
    finally:
        await rtmp.stop()


async def test_connections_over_the_limit_are_rejected_at_connect(authorizer):
    rtmp = RtmpServer("127.0.0.1", 0, authorizer, max_connections=1)
    await rtmp.start()
    try:
        first = await RawClient.open(rtmp.port)
        await first.publish()
        second = await RawClient.open(rtmp.port)
        with pytest.raises(ConnectionError):
            await second.connect()  # refused with _error, then closed
        replies = second.output.commands()
        assert replies == [["_error", 1.0, None, replies[0][3]]]
        assert replies[0][3]["code"] == "NetConnection.Connect.Rejected"
    finally:
        await rtmp.stop()


def test_runs_on_uvloop():
    async def scenario() -> list[RecordingSink]:
        authorizer = Authorizer()
        rtmp = RtmpServer("127.0.0.1", 0, authorizer, limits=Limits())
        await rtmp.start()
        try:
            client = await RawClient.open(rtmp.port)
            status = await client.publish()
            assert status["code"] == "NetStream.Publish.Start"
            await client.send(chunked(4, VIDEO, b"\x17\x01frame", stream_id=1, timestamp=40))
            async with asyncio.timeout(5):
                await authorizer.sinks[0].got_video.wait()
            client.close()
            async with asyncio.timeout(5):
                await authorizer.sinks[0].closed.wait()
        finally:
            await rtmp.stop()
        return authorizer.sinks

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sinks = runner.run(scenario())
    assert sinks[0].video == [(40, b"\x17\x01frame")]
    assert sinks[0].close_calls == 1
