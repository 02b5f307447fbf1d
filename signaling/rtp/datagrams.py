"""Sending a viewer's packets for one frame in as few system calls as possible.

One `sendto` per packet is the largest cost left per viewer. On Linux, UDP segmentation
offload (`UDP_SEGMENT`) sends a run of equal-size datagrams to one address in one
`sendmsg`; the packetizer makes a NAL unit's fragments equal-size for that, SRTP adds
the same tag to each, and the protector (signaling/rtp/srtp_frames.py) lays them end to end,
so a run is one slice of its buffer, sent without copying. The viewer sends on its own
duplicate of its ICE socket's descriptor (same socket, same port), so a full socket
says so (the viewer is behind) instead of growing an event-loop buffer. Where the C
module `signaling.rtp._sendpath` was built, it walks the runs and makes the calls itself.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import sys

try:
    from signaling.rtp import _sendpath as native
except ImportError:  # not built here: the Python loop below does the same
    native = None

SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h
MAX_SEGMENTS = 32  # well under the kernel's limit (64) and 64 KiB per call
SEGMENT_SIZE = struct.Struct("=H")
GSO_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}


def segment_control(size: int) -> list[tuple[int, int, bytes]]:
    """The ancillary data asking the kernel to cut a send into `size`-byte datagrams."""
    return [(SOL_UDP, UDP_SEGMENT, SEGMENT_SIZE.pack(size))]


class DatagramSender:
    """Sends to one address through a datagram transport's socket.

    Falls back to the transport's own `sendto` when it has no socket (a TURN relay),
    and to one `sendto` per packet where segmentation offload is refused.
    """

    def __init__(self, transport: asyncio.DatagramTransport, address: tuple[str, int]) -> None:
        self.address = address
        self._transport = transport
        self._socket: socket.socket | None = None
        self._segmented = sys.platform == "linux"
        self._controls: dict[int, list[tuple[int, int, bytes]]] = {}
        self._native: tuple[int, bytes] | None = None
        shared = transport.get_extra_info("socket")
        if shared is not None:
            self._socket = socket.socket(fileno=os.dup(shared.fileno()))
            self._socket.setblocking(False)
            if native is not None:
                self._native = (self._socket.fileno(), native.sockaddr(*address[:2]))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._native = None

    def send(self, data: memoryview, sizes: list[int]) -> bool:
        """Send the packets laid end to end in `data`, of `sizes`, in order; False if
        the socket was full (the rest dropped)."""
        if self._native is not None:
            return self._send_natively(*self._native, data, sizes)
        sock = self._socket
        if sock is None:
            self._send_through_transport(data, sizes)
            return True
        try:
            if self._segmented:
                self._send_segmented(sock, data, sizes)
            else:
                self._send_one_by_one(sock, data, sizes, 0)
        except BlockingIOError:
            return False
        return True

    @property
    def native_target(self) -> tuple[int, bytes, bool] | None:
        """(descriptor, socket address, segmented) for the C send path; None where it
        is not built or there is no socket of ours."""
        if self._native is None:
            return None
        return (*self._native, self._segmented)

    def _send_natively(self, fd: int, address: bytes, data: memoryview, sizes: list[int]) -> bool:
        flags = native.send(fd, address, data, sizes, self._segmented)
        if flags & native.SEND_UNSEGMENTED:
            self._segmented = False
        return not flags & native.SEND_FULL

    def _send_through_transport(self, data: memoryview, sizes: list[int]) -> None:
        """The transport may keep what it cannot send yet: it gets copies."""
        offset = 0
        for size in sizes:
            self._transport.sendto(bytes(data[offset : offset + size]), self.address)
            offset += size

    def _send_one_by_one(
        self, sock: socket.socket, data: memoryview, sizes: list[int], offset: int
    ) -> None:
        address = self.address
        for size in sizes:
            sock.sendto(data[offset : offset + size], address)
            offset += size

    def _send_segmented(self, sock: socket.socket, data: memoryview, sizes: list[int]) -> None:
        """Runs of equal size (the last of a run may be shorter) go in one call each."""
        address, count, start, offset = self.address, len(sizes), 0, 0
        while start < count:
            size = sizes[start]
            end = start + 1
            limit = min(count, start + MAX_SEGMENTS)
            while end < limit and sizes[end] == size:
                end += 1
            if end < limit and sizes[end] < size:
                end += 1
            run_end = offset + size * (end - start - 1) + sizes[end - 1]
            if end - start == 1:
                sock.sendto(data[offset:run_end], address)
            else:
                control = self._controls.get(size)
                if control is None:
                    control = self._controls[size] = segment_control(size)
                try:
                    sock.sendmsg([data[offset:run_end]], control, 0, address)
                except OSError as error:
                    if error.errno not in GSO_UNSUPPORTED:
                        raise
                    self._segmented = False
                    self._send_one_by_one(sock, data, sizes[start:], offset)
                    return
            start, offset = end, run_end
