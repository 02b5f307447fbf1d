"""Test-side RTMP pieces: a hand-built chunk encoder (independent of the server's
writer, so it can produce every header type), a scripted client for real sockets, a
recording sink and the ffmpeg publisher command."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from rtmp_ingest import MediaSink, PublishRefused, RtmpConnection
from rtmp_ingest.amf0 import decode_values, encode_values
from rtmp_ingest.chunks import ChunkReader
from rtmp_ingest.limits import Limits
from rtmp_ingest.messages import COMMAND_AMF0, Message

C1 = bytes(8) + bytes(range(256)) * 6
C0_C1 = b"\x03" + C1[:1536]
C2 = bytes(1536)
STREAM_KEY = "good-key"


def basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1, (csid - 64) % 256, (csid - 64) // 256])


def header(
    fmt: int,
    csid: int,
    *,
    timestamp: int = 0,
    length: int = 0,
    type_id: int = 0,
    stream_id: int = 0,
    extended: bool | None = None,
) -> bytes:
    """One chunk header. `timestamp` is the absolute time (type 0) or the delta (1, 2);
    for type 3 pass `extended=True` to repeat the previous extended timestamp."""
    big = timestamp >= 0xFFFFFF if extended is None else extended
    field_value = 0xFFFFFF if big else timestamp
    out = basic_header(fmt, csid)
    if fmt <= 2:
        out += field_value.to_bytes(3, "big")
    if fmt <= 1:
        out += length.to_bytes(3, "big") + bytes([type_id])
    if fmt == 0:
        out += stream_id.to_bytes(4, "little")
    if big:
        out += timestamp.to_bytes(4, "big")
    return out


def chunked(
    csid: int,
    type_id: int,
    payload: bytes,
    *,
    stream_id: int = 0,
    timestamp: int = 0,
    chunk_size: int = 128,
    fmt: int = 0,
) -> bytes:
    """A whole message: a header of type `fmt`, then type 3 continuation chunks."""
    big = timestamp >= 0xFFFFFF
    first = header(
        fmt,
        csid,
        timestamp=timestamp,
        length=len(payload),
        type_id=type_id,
        stream_id=stream_id,
    )
    out = first + payload[:chunk_size]
    for offset in range(chunk_size, len(payload), chunk_size):
        out += header(3, csid, timestamp=timestamp, extended=big)
        out += payload[offset : offset + chunk_size]
    return out


def command(name: str, transaction: float, *values: Any, stream_id: int = 0) -> bytes:
    csid = 3 if stream_id == 0 else 8
    body = encode_values(name, transaction, *values)
    return chunked(csid, COMMAND_AMF0, body, stream_id=stream_id)


def control(type_id: int, payload: bytes) -> bytes:
    return chunked(2, type_id, payload)


def connect_command(app: str = "live") -> bytes:
    return command("connect", 1.0, {"app": app, "tcUrl": f"rtmp://127.0.0.1/{app}"})


def publish_commands(key: str = STREAM_KEY) -> bytes:
    return (
        command("releaseStream", 2.0, None, key)
        + command("FCPublish", 3.0, None, key)
        + command("createStream", 4.0, None)
    )


@dataclass
class ServerOutput:
    """Everything the server sent, read back as messages (and AMF0 commands)."""

    reader: ChunkReader = field(default_factory=lambda: ChunkReader(Limits()))
    messages: list[Message] = field(default_factory=list)

    def feed(self, data: bytes) -> list[Message]:
        new = self.reader.feed(data)
        self.messages += new
        return new

    def commands(self) -> list[list[Any]]:
        return [decode_values(m.payload) for m in self.messages if m.type_id == COMMAND_AMF0]

    def statuses(self) -> list[dict[str, Any]]:
        return [c[3] for c in self.commands() if c[0] == "onStatus"]


def handshaken() -> tuple[RtmpConnection, ServerOutput]:
    """A core connection past the handshake; the S0/S1/S2 reply is dropped."""
    connection = RtmpConnection()
    connection.receive_data(C0_C1 + C2)
    assert len(connection.data_to_send()) == 1 + 2 * 1536
    return connection, ServerOutput()


def publishing(limits: Limits | None = None) -> tuple[RtmpConnection, ServerOutput]:
    """A core connection that has been accepted as a publisher on stream 1."""
    connection = RtmpConnection(limits)
    connection.receive_data(C0_C1 + C2)
    connection.data_to_send()
    output = ServerOutput()
    connection.receive_data(connect_command())
    connection.accept_connect()
    connection.receive_data(publish_commands())
    connection.receive_data(command("publish", 5.0, None, STREAM_KEY, "live", stream_id=1))
    connection.accept_publish(1)
    output.feed(connection.data_to_send())
    assert connection.publishing
    return connection, output


# --- real sockets ---------------------------------------------------------------------


class RecordingSink:
    """A MediaSink that remembers everything, for assertions."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []
        self.audio: list[tuple[int, bytes]] = []
        self.video: list[tuple[int, bytes]] = []
        self.close_calls = 0
        self.closed = asyncio.Event()
        self.got_video = asyncio.Event()

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata.append(metadata)

    def on_audio(self, timestamp_ms: int, payload: bytes) -> None:
        self.audio.append((timestamp_ms, payload))

    def on_video(self, timestamp_ms: int, payload: bytes) -> None:
        self.video.append((timestamp_ms, payload))
        self.got_video.set()

    def close(self) -> None:
        self.close_calls += 1
        self.closed.set()


class Authorizer:
    """Accepts STREAM_KEY on app "live" with a fresh RecordingSink; refuses the rest."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.sinks: list[RecordingSink] = []
        self.accepted = asyncio.Event()

    async def __call__(self, app: str, key: str) -> MediaSink:
        self.calls.append((app, key))
        if app != "live" or key != STREAM_KEY:
            raise PublishRefused("NetStream.Publish.BadName", "Unknown stream key.")
        sink = RecordingSink()
        self.sinks.append(sink)
        self.accepted.set()
        return sink


class RawClient:
    """A scripted RTMP client over a real socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.output = ServerOutput()

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def handshake(self) -> None:
        self.writer.write(C0_C1)
        await self.reader.readexactly(1 + 2 * 1536)
        self.writer.write(C2)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_reply(self, name: str, seconds: float = 10.0) -> list[Any]:
        """Read until the server sends the command `name` (e.g. `_result`); return it."""
        async with asyncio.timeout(seconds):
            while not (replies := [c for c in self.output.commands() if c[0] == name]):
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed before a {name}")
                self.output.feed(data)
        return replies[0]

    async def until_status(self, seconds: float = 10.0) -> dict[str, Any]:
        """Read until the server sends an onStatus; return its info object."""
        return (await self.until_reply("onStatus", seconds))[3]

    async def connect(self) -> list[Any]:
        """Handshake and `connect`, waiting for the answer as OBS and ffmpeg do."""
        await self.handshake()
        await self.send(connect_command())
        return await self.until_reply("_result")

    async def until_closed(self, seconds: float = 10.0) -> None:
        """Read until the server closes (a reset counts: `stop()` aborts)."""
        async with asyncio.timeout(seconds):
            with contextlib.suppress(ConnectionError):
                while data := await self.reader.read(65536):
                    self.output.feed(data)

    async def publish(self, key: str = STREAM_KEY) -> dict[str, Any]:
        await self.connect()
        await self.send(publish_commands())
        await self.send(command("publish", 5.0, None, key, "live", stream_id=1))
        return await self.until_status()

    def close(self) -> None:
        self.writer.close()


def ffmpeg_publish_args(port: int, key: str, seconds: float, *, app: str = "live") -> list[str]:
    """The Debian ffmpeg CLI publishing a test pattern with a tone (no B-frames)."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-bf",
        "0",
        "-g",
        "30",
        "-c:a",
        "aac",
        "-t",
        str(seconds),
        "-f",
        "flv",
        f"rtmp://127.0.0.1:{port}/{app}/{key}",
    ]


async def run_ffmpeg(args: list[str], seconds: float = 60.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    code, _, stderr = await finished_within(process, seconds)
    return code, stderr


async def finished_within(
    process: asyncio.subprocess.Process, seconds: float
) -> tuple[int, str, str]:
    """The process's exit code, stdout and stderr once it ends; killed after `seconds`
    or when the caller is cancelled."""
    try:
        async with asyncio.timeout(seconds):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return (
        process.returncode or 0,
        (out or b"").decode(errors="replace"),
        (err or b"").decode(errors="replace"),
    )
