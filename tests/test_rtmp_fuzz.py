"""Fuzzing: the sans-IO core with thousands of generated inputs, then hostile
connections against the real server while a good ffmpeg stream keeps flowing."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtmp_ingest import (
    ConnectRequested,
    Limits,
    ProtocolError,
    PublishRequested,
    RtmpConnection,
    RtmpServer,
)
from rtmp_ingest.amf0 import decode_values, encode_values
from rtmp_ingest.errors import ProtocolViolation
from rtmp_ingest.events import Event
from rtmp_ingest.messages import AUDIO, DATA_AMF0, SET_CHUNK_SIZE, VIDEO
from tests.rtmp_support import (
    C0_C1,
    C1,
    C2,
    STREAM_KEY,
    Authorizer,
    chunked,
    command,
    connect_command,
    control,
    ffmpeg_publish_args,
    header,
    publish_commands,
    publishing,
    run_ffmpeg,
)

LIMITS = Limits(max_message_length=64 * 1024, max_buffered_bytes=128 * 1024)
MEMORY_BOUND = LIMITS.max_message_length + LIMITS.max_buffered_bytes + 64 * 1024
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def feed(connection: RtmpConnection, pieces: list[bytes]) -> list[Event]:
    """Feed every piece; the core must never raise, hold unbounded memory, or say
    anything after a ProtocolError."""
    events: list[Event] = []
    for piece in pieces:
        new = connection.receive_data(piece)
        assert connection.buffered_bytes <= MEMORY_BOUND + len(piece)
        if events and isinstance(events[-1], ProtocolError):
            assert new == []
        events += new
    errors = [e for e in events if isinstance(e, ProtocolError)]
    assert len(errors) <= 1
    if errors:
        assert events[-1] is errors[0] and connection.finished
    return events


@FUZZ
@given(st.lists(st.binary(max_size=4096), max_size=8))
def test_random_bytes_from_the_first_byte(pieces):
    feed(RtmpConnection(LIMITS), pieces)


@FUZZ
@given(st.lists(st.binary(max_size=4096), max_size=8))
def test_random_bytes_after_the_handshake(pieces):
    feed(RtmpConnection(LIMITS), [C0_C1 + C2, *pieces])


@FUZZ
@given(st.binary(max_size=2048))
def test_random_amf0_only_raises_protocol_violations(data):
    with contextlib.suppress(ProtocolViolation):
        decode_values(data, LIMITS)


chunk_headers = st.builds(
    header,
    st.integers(0, 3),
    st.sampled_from([2, 3, 4, 5, 63, 64, 319, 320, 65599]),
    timestamp=st.integers(0, 0xFFFFFFFF),
    length=st.integers(0, 70_000),
    type_id=st.sampled_from([1, 2, 3, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22, 0, 255]),
    stream_id=st.integers(0, 3),
)


@FUZZ
@given(st.lists(st.tuples(chunk_headers, st.binary(max_size=300)), max_size=20))
def test_random_chunk_headers_on_a_publishing_connection(chunks):
    connection, _ = publishing(LIMITS)
    feed(connection, [head + body for head, body in chunks])


def valid_session() -> list[bytes]:
    """A whole publish session after the handshake, one client turn per item (a client
    waits for the answers to connect and publish before it goes on)."""
    return [
        connect_command(),
        publish_commands() + command("publish", 5.0, None, STREAM_KEY, "live", stream_id=1),
        control(SET_CHUNK_SIZE, (4096).to_bytes(4, "big"))
        + chunked(
            4, DATA_AMF0, encode_values("@setDataFrame", "onMetaData", {"w": 1.0}), stream_id=1
        )
        + chunked(4, VIDEO, b"\x17\x00" + bytes(300), stream_id=1, chunk_size=4096)
        + chunked(6, AUDIO, b"\xaf\x00\x12\x10", stream_id=1, chunk_size=4096)
        + chunked(4, VIDEO, b"\x17\x01" + bytes(5000), stream_id=1, chunk_size=4096),
    ]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """Changed bytes, cuts and insertions at random places."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(out) or 1)
        action = rng.random()
        if action < 0.6 and out:
            out[where] = rng.randrange(256)
        elif action < 0.8:
            del out[where : where + rng.randint(1, 64)]
        else:
            out[where:where] = rng.randbytes(rng.randint(1, 64))
    return bytes(out)


def test_thousands_of_mutated_sessions():
    """Seeded mutations of one client turn of a valid session; connect and publish are
    accepted as soon as they are asked for, so the mutations reach every state."""
    rng = random.Random(20240501)
    session = valid_session()
    outcomes = collections.Counter()
    for _ in range(3000):
        turns = list(session)
        target = rng.randrange(len(turns))
        turns[target] = mutate(rng, turns[target])
        connection = RtmpConnection(LIMITS)
        connection.receive_data(C0_C1 + C2)
        for turn in turns:
            for event in feed(connection, [turn]):
                outcomes[type(event).__name__] += 1
                if isinstance(event, ConnectRequested):
                    connection.accept_connect()
                elif isinstance(event, PublishRequested):
                    connection.accept_publish(event.stream_id)
            connection.data_to_send()
    assert outcomes["ProtocolError"] > 100
    assert outcomes["VideoData"] > 1000  # many mutated sessions still got to media


# --- against the real socket ---------------------------------------------------------------


def hostile_payloads(rng: random.Random) -> list[bytes]:
    """Garbage of every kind a scanner or a broken client might send."""
    oversized = control(SET_CHUNK_SIZE, (0x7FFFFFFF).to_bytes(4, "big"))
    too_long = header(0, 4, length=0xFFFFFF, type_id=VIDEO, stream_id=1)
    payloads = [
        b"\x06" + C1,
        b"GET / HTTP/1.1\r\n\r\n",
        C0_C1 + C2 + oversized,
        C0_C1 + C2 + too_long,
        C0_C1 + C2 + chunked(4, VIDEO, b"\x17\x00", stream_id=1),  # media first
        C0_C1 + C2 + chunked(3, 20, b"\x03" * 200),  # nested objects, never closed
    ]
    payloads += [b"\x03" + rng.randbytes(rng.randint(1, 6000)) for _ in range(60)]
    payloads += [C0_C1 + C2 + rng.randbytes(rng.randint(1, 6000)) for _ in range(60)]
    return payloads


async def send_garbage(port: int, payload: bytes) -> None:
    """Send, then wait until the server closes (the handshake timeout at the latest)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        async with asyncio.timeout(15):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_garbage_connections_do_not_disturb_a_good_stream():
    authorizer = Authorizer()
    rtmp = RtmpServer("127.0.0.1", 0, authorizer, handshake_timeout=1.0, idle_timeout=5.0)
    await rtmp.start()
    try:
        good = asyncio.create_task(run_ffmpeg(ffmpeg_publish_args(rtmp.port, STREAM_KEY, 4)))
        async with asyncio.timeout(20):
            await authorizer.accepted.wait()
            await authorizer.sinks[0].got_video.wait()
        rng = random.Random(7)
        payloads = hostile_payloads(rng)
        for start in range(0, len(payloads), 25):
            await asyncio.gather(
                *(send_garbage(rtmp.port, p) for p in payloads[start : start + 25])
            )
        code, stderr = await good
        assert code == 0, stderr
        sink = authorizer.sinks[0]
        async with asyncio.timeout(10):
            await sink.closed.wait()
        frames = [p for _, p in sink.video if p[1] == 1]
        assert len(frames) >= 110  # 4 s at 30 fps
        assert sink.close_calls == 1
        assert len(authorizer.sinks) == 1  # no garbage ever reached a publish
        assert rtmp.connection_count == 0
    finally:
        await rtmp.stop()
