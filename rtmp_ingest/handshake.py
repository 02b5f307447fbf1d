"""The RTMP simple handshake, server side (OBS and ffmpeg accept it).

C0 (version) + C1 (1536 bytes) in, S0 + S1 + S2 out at once (S2 echoes C1), then C2
in. Only the byte counts and the version are checked: the simple handshake carries no
secret worth verifying.
"""

from __future__ import annotations

import os

from rtmp_ingest.errors import ProtocolViolation

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536


class ServerHandshake:
    """Feed bytes until `done`; `feed` returns the reply and any bytes past C2."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._sent_reply = False
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(bytes to send, bytes that already belong to the chunk stream)."""
        self._buffer += data
        reply = b""
        if not self._sent_reply:
            self._check_version()
            if len(self._buffer) < 1 + HANDSHAKE_SIZE:
                return b"", b""
            client_one = bytes(self._buffer[1 : 1 + HANDSHAKE_SIZE])
            del self._buffer[: 1 + HANDSHAKE_SIZE]
            server_one = bytes(8) + os.urandom(HANDSHAKE_SIZE - 8)
            reply = bytes((RTMP_VERSION,)) + server_one + client_one
            self._sent_reply = True
        if len(self._buffer) < HANDSHAKE_SIZE:
            return reply, b""
        rest = bytes(self._buffer[HANDSHAKE_SIZE:])
        self._buffer = bytearray()
        self.done = True
        return reply, rest

    def _check_version(self) -> None:
        if self._buffer and self._buffer[0] != RTMP_VERSION:
            raise ProtocolViolation(f"unsupported RTMP version {self._buffer[0]}")
