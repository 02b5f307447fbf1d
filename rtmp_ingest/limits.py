"""Bounds on what one RTMP connection may make the server hold or parse.

Every value is a ceiling the peer cannot negotiate past: going over one ends that
connection with a protocol error, so memory and CPU per connection stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SPEC_CHUNK_SIZE = 0xFFFFFF  # larger sizes are equivalent: no message can be longer


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection ceilings (defaults fit OBS and ffmpeg with a wide margin)."""

    max_chunk_size: int = MAX_SPEC_CHUNK_SIZE
    max_message_length: int = 8 * 1024 * 1024
    max_chunk_streams: int = 32
    max_buffered_bytes: int = 16 * 1024 * 1024  # all partial messages together
    max_message_streams: int = 4  # createStream calls
    max_amf_depth: int = 16
    max_amf_items: int = 4096  # values in one command or data message

    def __post_init__(self) -> None:
        if not 1 <= self.max_chunk_size <= MAX_SPEC_CHUNK_SIZE:
            raise ValueError(f"max_chunk_size must be 1..{MAX_SPEC_CHUNK_SIZE}")
        for name in (
            "max_message_length",
            "max_chunk_streams",
            "max_buffered_bytes",
            "max_message_streams",
            "max_amf_depth",
            "max_amf_items",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
