"""RTMP ingest: OBS (or ffmpeg) publishes here; streams go to a `MediaSink`.

`RtmpConnection` is the sans-IO protocol core; `RtmpServer` is the asyncio shell that
`live` starts with an `authorize(app, key) -> MediaSink` callable.
"""

from rtmp_ingest.connection import RtmpConnection
from rtmp_ingest.events import (
    AudioData,
    ConnectRequested,
    Event,
    Metadata,
    PlayRefused,
    ProtocolError,
    PublishRequested,
    Unpublished,
    VideoData,
)
from rtmp_ingest.limits import Limits
from rtmp_ingest.server import RtmpServer
from rtmp_ingest.sink import Authorize, MediaSink, PublishRefused

__all__ = [
    "AudioData",
    "Authorize",
    "ConnectRequested",
    "Event",
    "Limits",
    "MediaSink",
    "Metadata",
    "PlayRefused",
    "ProtocolError",
    "PublishRefused",
    "PublishRequested",
    "RtmpConnection",
    "RtmpServer",
    "Unpublished",
    "VideoData",
]
