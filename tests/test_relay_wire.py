"""The internal relay's wire format, and an edge's hub fed with what it carries."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.hub import StreamHub
from media.packets import OpusFrame, VideoFrame
from media.relay_wire import (
    MAX_PAYLOAD,
    RECORD,
    RelayDecoder,
    RelayFormatError,
    encode,
    greeting,
)

PACKETS = [
    VideoFrame(b"\x00\x00\x00\x01\x65" + os.urandom(3000), True, 1000, 1000),
    OpusFrame(os.urandom(120), 1000, 2880),
    VideoFrame(b"\x00\x00\x00\x01\x41" + os.urandom(800), False, 1033, 1033),
    OpusFrame(b"", 1060, 2880),
    VideoFrame(b"\x00\x00\x00\x01\x41", False, -5, 2**40),
]
STREAM = greeting() + b"".join(encode(p) for p in PACKETS)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_slicing_decodes_to_the_same_packets(cuts):
    decoder, decoded, start = RelayDecoder(), [], 0
    for end in [*sorted(cuts), len(STREAM)]:
        decoded += decoder.feed(STREAM[start:end])
        start = end
    assert decoded == PACKETS


@pytest.mark.parametrize(
    "body",
    [
        b"HTTP/1.1 200 OK\r\n",  # not a relay stream at all
        b"SCRELAY\x02",  # another version
        greeting() + RECORD.pack(3, 0, 0, 0, 0),  # an unknown kind
        greeting() + RECORD.pack(1, 0, 0, 0, MAX_PAYLOAD + 1),  # a frame too large to buffer
    ],
)
def test_what_is_not_a_relay_stream_is_refused(body):
    with pytest.raises(RelayFormatError):
        RelayDecoder().feed(body)


def test_a_partial_greeting_waits_for_more():
    decoder = RelayDecoder()
    assert decoder.feed(greeting()[:3]) == []
    assert decoder.feed(greeting()[3:] + encode(PACKETS[1])) == [PACKETS[1]]


async def test_an_edge_hub_starts_its_readers_on_a_keyframe_once_video_is_seen():
    hub = StreamHub("edge", relayed=True)
    hub.on_relayed(OpusFrame(b"a", 0, 2880))  # audio before any video: a start point
    early = hub.subscribe(webrtc=True)
    assert early.get_nowait() == OpusFrame(b"a", 0, 2880)
    for packet in PACKETS:
        hub.on_relayed(packet)
    late = hub.subscribe(webrtc=True)  # joins after a delta frame: starts on the keyframe
    assert late.get_nowait() == PACKETS[0]
    hub.on_relayed(OpusFrame(b"b", 1100, 2880))
    later = hub.subscribe(webrtc=True)  # audio is no start point once there is video
    assert later.get_nowait() == PACKETS[0]
    hub.close()
