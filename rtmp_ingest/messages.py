"""RTMP message types and the reassembled message the chunk layer hands up."""

from __future__ import annotations

from dataclasses import dataclass

SET_CHUNK_SIZE = 1
ABORT = 2
ACKNOWLEDGEMENT = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
COMMAND_AMF3 = 17
DATA_AMF0 = 18
COMMAND_AMF0 = 20

# User Control event types
STREAM_BEGIN = 0
PING_REQUEST = 6
PING_RESPONSE = 7

TIMESTAMP_MODULUS = 1 << 32


@dataclass(frozen=True, slots=True)
class Message:
    """One complete RTMP message; `timestamp` is absolute, in ms, wrapping at 2**32."""

    chunk_stream_id: int
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
