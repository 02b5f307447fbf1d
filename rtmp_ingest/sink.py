"""The port between ingest and whoever consumes a stream (the media hub).

`rtmp_ingest` defines it so that it depends on nothing of the consumer's: `live`
passes an `authorize` callable that turns (app, stream key) into a `MediaSink`, or
raises `PublishRefused`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class MediaSink(Protocol):
    """Receives one published stream. Called on the event loop: every method must be
    cheap and must not block (queue the work elsewhere if it is not)."""

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        """`onMetaData` from the encoder (resolution, bitrates, encoder name...)."""

    def on_audio(self, timestamp_ms: int, payload: bytes) -> None:
        """One FLV audio tag body, exactly as carried in the RTMP message."""

    def on_video(self, timestamp_ms: int, payload: bytes) -> None:
        """One FLV video tag body, exactly as carried in the RTMP message."""

    def close(self) -> None:
        """The publisher is gone (stopped, disconnected, failed or server stopping).
        Called exactly once."""


class PublishRefused(Exception):
    """Raised by `authorize` to refuse a publisher with an onStatus error it can show."""

    def __init__(
        self,
        code: str = "NetStream.Publish.BadName",
        description: str = "Stream key refused.",
    ) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


Authorize = Callable[[str, str], Awaitable[MediaSink]]
