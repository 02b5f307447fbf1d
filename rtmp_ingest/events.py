"""What `RtmpConnection.receive_data` reports to its owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """`connect`: answer with `accept_connect()` or `reject_connect(...)`."""

    app: str
    tc_url: str


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """`publish`: answer with `accept_publish(stream_id)` or `reject_publish(...)`.

    `key` is the publishing name without its `?query`, which is kept in `query`.
    """

    stream_id: int
    key: str
    app: str
    query: str


@dataclass(frozen=True, slots=True)
class Metadata:
    """`@setDataFrame`/`onMetaData`: the encoder's description of the stream."""

    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioData:
    """One audio message: an FLV audio tag body."""

    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class VideoData:
    """One video message: an FLV video tag body."""

    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Unpublished:
    """The publisher stopped (`FCUnpublish`, `deleteStream` or `closeStream`)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PlayRefused:
    """A client asked to play; it was told this server only takes publishers."""

    stream_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer broke the protocol or a limit; the connection is finished."""

    reason: str


Event = (
    ConnectRequested
    | PublishRequested
    | Metadata
    | AudioData
    | VideoData
    | Unpublished
    | PlayRefused
    | ProtocolError
)
