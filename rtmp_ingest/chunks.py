"""The RTMP chunk stream: splitting messages into chunks and reassembling them.

`ChunkReader` is the hot path of ingest. It parses headers with `struct` at an index
into one receive buffer (no per-byte loops), consumes only whole chunks, and keeps
the unparsed tail, which is bounded by one chunk. Set Chunk Size and Abort belong to
the chunk layer, so the reader applies them itself before parsing the next chunk.
"""

from __future__ import annotations

import struct

from rtmp_ingest.errors import ProtocolViolation
from rtmp_ingest.limits import Limits
from rtmp_ingest.messages import ABORT, SET_CHUNK_SIZE, TIMESTAMP_MODULUS, Message

DEFAULT_CHUNK_SIZE = 128
EXTENDED_TIMESTAMP = 0xFFFFFF
MIN_CHUNK_STREAM_ID = 2
MAX_CHUNK_STREAM_ID = 65599
_HEADER_SIZES = (11, 7, 3, 0)
_TIMESTAMP_LENGTH_TYPE = struct.Struct(">BHBHB")  # 24-bit timestamp, 24-bit length, type
_TIMESTAMP = struct.Struct(">BH")
_U32 = struct.Struct(">I")
_U32_LE = struct.Struct("<I")


class _ChunkStreamState:
    """What the last header on one chunk stream said, and the message in progress."""

    __slots__ = ("delta", "extended", "length", "partial", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.partial: bytearray | None = None


class ChunkReader:
    """Bytes in, complete messages out; raises `ProtocolViolation` on bad input."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._streams: dict[int, _ChunkStreamState] = {}
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._partial_bytes = 0

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for incomplete chunks and messages (bounded by the limits)."""
        return len(self._buffer) + self._partial_bytes

    def discard(self) -> None:
        """Drop every buffered byte (the connection is finished)."""
        self._buffer = bytearray()
        self._streams.clear()
        self._partial_bytes = 0

    def feed(self, data: bytes) -> list[Message]:
        """Every message completed by `data`; an incomplete chunk waits for more."""
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        pos = 0
        try:
            while (next_pos := self._read_chunk(buffer, pos, messages)) >= 0:
                pos = next_pos
        finally:
            del buffer[:pos]
        return messages

    def _read_chunk(self, buf: bytearray, pos: int, messages: list[Message]) -> int:
        """Parse the chunk at `pos`; return the position after it, or -1 if incomplete.

        Nothing is changed until the whole chunk is present, so an incomplete chunk is
        simply parsed again when more bytes arrive.
        """
        end = len(buf)
        if pos >= end:
            return -1
        fmt = buf[pos] >> 6
        csid = buf[pos] & 0x3F
        p = pos + 1
        if csid < 2:
            extra = csid + 1
            if p + extra > end:
                return -1
            csid = 64 + buf[p] + (buf[p + 1] << 8 if extra == 2 else 0)
            p += extra
        state = self._streams.get(csid)
        if state is None:
            if fmt != 0:
                raise ProtocolViolation(f"chunk stream {csid} starts without a full header")
            if len(self._streams) >= self._limits.max_chunk_streams:
                raise ProtocolViolation("too many chunk streams")
        elif state.partial is not None and fmt != 3:
            raise ProtocolViolation(f"new message header inside a message on chunk stream {csid}")
        if p + _HEADER_SIZES[fmt] > end:
            return -1

        header = p
        if fmt == 3:
            extended = state.extended  # type: ignore[union-attr]
            stamp = 0
            length = state.length  # type: ignore[union-attr]
        else:
            if fmt == 2:
                high, low = _TIMESTAMP.unpack_from(buf, p)
                length = state.length  # type: ignore[union-attr]
            else:
                high, low, length_high, length_low, type_id = _TIMESTAMP_LENGTH_TYPE.unpack_from(
                    buf, p
                )
                length = length_high << 16 | length_low
                if length > self._limits.max_message_length:
                    raise ProtocolViolation(f"message of {length} bytes is over the limit")
            stamp = high << 16 | low
            extended = stamp == EXTENDED_TIMESTAMP
            p += _HEADER_SIZES[fmt]
        if extended:
            if p + 4 > end:
                return -1
            stamp = _U32.unpack_from(buf, p)[0]
            p += 4
        partial = state.partial if state is not None else None
        size = min(self._chunk_size, length - (len(partial) if partial is not None else 0))
        if p + size > end:
            return -1

        if state is None:
            state = self._streams[csid] = _ChunkStreamState()
        if fmt == 3:
            if partial is None:
                state.timestamp = (state.timestamp + state.delta) % TIMESTAMP_MODULUS
        else:
            if fmt == 0:
                state.timestamp = stamp
                state.stream_id = _U32_LE.unpack_from(buf, header + 7)[0]
            else:
                state.timestamp = (state.timestamp + stamp) % TIMESTAMP_MODULUS
            if fmt != 2:
                state.type_id = type_id
            state.delta = stamp  # a type 0 timestamp doubles as the delta of a type 3 message
            state.length = length
            state.extended = extended

        if partial is None and size == length:
            payload = bytes(buf[p : p + size])
        else:
            self._partial_bytes += size
            if self._partial_bytes > self._limits.max_buffered_bytes:
                raise ProtocolViolation("too many bytes in unfinished messages")
            if partial is None:
                partial = state.partial = bytearray()
            partial += buf[p : p + size]
            if len(partial) < length:
                return p + size
            self._partial_bytes -= length
            state.partial = None
            payload = bytes(partial)
        message = Message(csid, state.type_id, state.stream_id, state.timestamp, payload)
        if message.type_id == SET_CHUNK_SIZE or message.type_id == ABORT:
            self._apply_control(message)
        else:
            messages.append(message)
        return p + size

    def _apply_control(self, message: Message) -> None:
        """Set Chunk Size and Abort: they change how the following chunks are read."""
        if len(message.payload) != 4:
            raise ProtocolViolation("chunk control message is not 4 bytes")
        value = _U32.unpack(message.payload)[0]
        if message.type_id == SET_CHUNK_SIZE:
            if not 1 <= value <= self._limits.max_chunk_size:
                raise ProtocolViolation(f"chunk size {value} refused")
            self._chunk_size = value
            return
        state = self._streams.get(value)
        if state is not None and state.partial is not None:
            self._partial_bytes -= len(state.partial)
            state.partial = None


class ChunkWriter:
    """Messages out as chunks: a full header first, then type 3 continuation chunks."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def encode(self, message: Message) -> bytes:
        """The chunks of one message (the server sends few, small messages)."""
        csid = message.chunk_stream_id
        if not MIN_CHUNK_STREAM_ID <= csid <= MAX_CHUNK_STREAM_ID:
            raise ValueError(f"chunk stream id {csid} out of range")
        timestamp = message.timestamp % TIMESTAMP_MODULUS
        extended = timestamp >= EXTENDED_TIMESTAMP
        stamp_field = EXTENDED_TIMESTAMP if extended else timestamp
        extended_bytes = _U32.pack(timestamp) if extended else b""
        length = len(message.payload)
        header = (
            basic_header(0, csid)
            + _TIMESTAMP_LENGTH_TYPE.pack(
                stamp_field >> 16,
                stamp_field & 0xFFFF,
                length >> 16,
                length & 0xFFFF,
                message.type_id,
            )
            + _U32_LE.pack(message.stream_id)
            + extended_bytes
        )
        continuation = basic_header(3, csid) + extended_bytes
        payload = message.payload
        size = self.chunk_size
        parts = [header, payload[:size]]
        for offset in range(size, length, size):
            parts += (continuation, payload[offset : offset + size])
        return b"".join(parts)


def basic_header(fmt: int, csid: int) -> bytes:
    """The 1, 2 or 3 byte basic header of a chunk."""
    if csid < 64:
        return bytes((fmt << 6 | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes((fmt << 6 | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))
