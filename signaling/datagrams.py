"""Sending a viewer's packets for one frame in as few system calls as possible.

One `sendto` per packet is the largest cost left per viewer. On Linux, UDP segmentation
offload (`UDP_SEGMENT`) sends a run of equal-size datagrams to one address in one
`sendmsg`; the packetizer makes a NAL unit's fragments equal-size for that, and SRTP
adds the same tag to each. The viewer sends on its own duplicate of its ICE socket's
descriptor (same socket, same port), so a full socket says so (the viewer is behind)
instead of growing an event-loop buffer.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import sys

SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h
MAX_SEGMENTS = 32  # well under the kernel's limit (64) and 64 KiB per call
SEGMENT_SIZE = struct.Struct("=H")
GSO_UNSUPPORTED = {errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP}


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
        shared = transport.get_extra_info("socket")
        if shared is not None:
            self._socket = socket.socket(fileno=os.dup(shared.fileno()))
            self._socket.setblocking(False)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def send(self, packets: list[bytes]) -> bool:
        """Send the packets in order; False if the socket was full (the rest dropped)."""
        sock = self._socket
        if sock is None:
            for packet in packets:
                self._transport.sendto(packet, self.address)
            return True
        try:
            if self._segmented:
                self._send_segmented(sock, packets)
            else:
                for packet in packets:
                    sock.sendto(packet, self.address)
        except BlockingIOError:
            return False
        return True

    def _send_segmented(self, sock: socket.socket, packets: list[bytes]) -> None:
        """Runs of equal size (the last of a run may be shorter) go in one call each."""
        address, count, start = self.address, len(packets), 0
        while start < count:
            size = len(packets[start])
            end = start + 1
            limit = min(count, start + MAX_SEGMENTS)
            while end < limit and len(packets[end]) == size:
                end += 1
            if end < limit and len(packets[end]) < size:
                end += 1
            if end - start == 1:
                sock.sendto(packets[start], address)
            else:
                control = [(SOL_UDP, UDP_SEGMENT, SEGMENT_SIZE.pack(size))]
                try:
                    sock.sendmsg(packets[start:end], control, 0, address)
                except OSError as error:
                    if error.errno not in GSO_UNSUPPORTED:
                        raise
                    self._segmented = False
                    for packet in packets[start:]:
                        sock.sendto(packet, address)
                    return
            start = end
