"""SRTP-protecting one viewer's packets of a frame back to back in one reusable buffer.

Per packet, pylibsrtp's `Session.protect` costs about twice what libsrtp itself does on
this path (a new `int *` and a copy into its buffer, then a copy out into new bytes),
and the packets then travel as separate objects. Here each packet's RTP header is packed
and its shared body copied straight into a buffer kept per viewer, libsrtp (through
pylibsrtp's own cffi binding: signaling/adapters/pylibsrtp_private.py) protects it in
place, and the next packet starts right after its tag. A run of equal-size packets is
then one contiguous slice, which a segmented send (signaling/rtp/datagrams.py) takes as
it is.

Where the C module `signaling.rtp._sendpath` was built (Linux with a compiler, at
install), a frame's packets are packed and protected by it in one call: the interpreter,
not libsrtp, is most of this loop's cost. Without it the same is done here in Python;
both make the same bytes (tests/test_srtp_frames.py runs each).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, NoReturn

import pylibsrtp
from pylibsrtp import SRTP_MAX_TRAILER_LEN, Session

from signaling.adapters.pylibsrtp_private import RawSession

try:
    from signaling.rtp import _sendpath as native
except ImportError:  # not built here: the Python loop below does the same
    native = None

RTP_HEADER = struct.Struct("!BBHII")
MARKER_BIT = 0x80
SRTP_OK = 0
INITIAL_BUFFER = 4 << 10  # enough for audio; video grows it to its largest frame (a keyframe)


class ProtectedPackets(NamedTuple):
    """Protected packets laid end to end in `data`, of the given sizes, in order.

    `data` is a view of the protector's buffer: valid until it protects again."""

    data: memoryview
    sizes: list[int]


class FrameProtector:
    """The SRTP sending side of one viewer's session, a frame of packets at a time.

    `protect` appends one frame's packets (a NACK's retransmissions gather for one send);
    `take` hands them over and starts afresh.
    """

    def __init__(self, session: Session) -> None:
        self._raw = RawSession(session)
        self._native = native
        self.srtp = self._raw.addresses  # for the C send path
        self._length = self._raw.new_length()
        self._buffer = bytearray()
        self._pointer: Any = None
        self._offset = 0
        self._sizes: list[int] = []
        self._grow(INITIAL_BUFFER)

    def _grow(self, room: int) -> None:
        """Room for `room` more bytes in a new, larger buffer: never resized in place (a
        view of the old one may still be alive)."""
        buffer = bytearray(max(self._offset + room, 2 * len(self._buffer)))
        buffer[: self._offset] = self._buffer[: self._offset]
        self._buffer, self._pointer = buffer, self._raw.pointer(buffer)

    def protect(
        self,
        first_byte: int,
        payload_type: int,
        ssrc: int,
        sequence: int,
        timestamp: int,
        bodies: list[bytes],
        marker: bool,
    ) -> None:
        """Each body behind its 12-byte RTP header (consecutive sequence numbers from
        `sequence`, the marker bit on the last packet if `marker`), protected, after
        the packets already there."""
        header = RTP_HEADER.size
        room = sum(map(len, bodies)) + len(bodies) * (header + SRTP_MAX_TRAILER_LEN)
        if self._offset + room > len(self._buffer):
            self._grow(room)
        last = len(bodies) - 1 if marker else -1
        if self._native is not None:  # the same, in C
            offset = self._native.protect(
                srtp=self.srtp, buffer=self._buffer, offset=self._offset,
                first_byte=first_byte, payload_type=payload_type, ssrc=ssrc,
                sequence=sequence, timestamp=timestamp, bodies=bodies, marker_index=last,
                sizes=self._sizes,
            )  # fmt: skip
            if offset < 0:
                self._fail(-offset)
            self._offset = offset
            return
        buffer, pointer, length, sizes = self._buffer, self._pointer, self._length, self._sizes
        protect, context, pack_into = self._raw.protect, self._raw.context, RTP_HEADER.pack_into
        offset = self._offset
        for index, body in enumerate(bodies):
            end = offset + header + len(body)
            buffer[offset + header : end] = body
            pack_into(
                buffer,
                offset,
                first_byte,
                payload_type | MARKER_BIT if index == last else payload_type,
                (sequence + index) & 0xFFFF,
                timestamp,
                ssrc,
            )
            length[0] = end - offset
            status = protect(context, pointer + offset, length)
            if status != SRTP_OK:
                self._fail(status)
            size = length[0]
            sizes.append(size)
            offset += size
        self._offset = offset

    def _fail(self, status: int) -> NoReturn:
        self._offset, self._sizes = 0, []  # nothing half-done is sent later
        raise pylibsrtp.Error(f"srtp_protect failed ({status})")

    def take(self) -> ProtectedPackets:
        """The packets protected since the last `take`."""
        packets = ProtectedPackets(memoryview(self._buffer)[: self._offset], self._sizes)
        self._offset, self._sizes = 0, []
        return packets
