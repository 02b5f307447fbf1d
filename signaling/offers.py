"""Checking a viewer's SDP offer before any peer is built for it.

The stream is passed through as it was published, so the offer must accept exactly
those codecs: H.264 with packetization-mode=1 in a profile aiortc can answer, and Opus
if it wants audio. Finding out here gives the viewer a clear 400/422 instead of
aiortc's internal errors, and costs a garbage request no sockets or subscriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiortc import RTCRtpCodecCapability, RTCRtpSender

from signaling.adapters.aiortc_private import (
    MediaDescription,
    SessionDescription,
    is_codec_compatible,
)
from storage.web import Problem

MAX_SDP_BYTES = 32 * 1024  # a browser's offer is a few KiB
RECEIVING_DIRECTIONS = {None, "sendrecv", "recvonly"}
SENDING_DIRECTIONS = {None, "sendrecv", "sendonly"}
H264 = "video/h264"
OPUS = "audio/opus"
RTX = "video/rtx"
REMB_LINE = re.compile(r"a=rtcp-fb:\S+ goog-remb\s*$")


@dataclass(frozen=True)
class ViewerOffer:
    """A checked offer: its text, and whether the viewer asked for audio."""

    sdp: str
    audio: bool


def codec_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    """The only codecs a viewer's transceiver may negotiate (with RTX for video)."""
    wanted = {H264, RTX} if kind == "video" else {OPUS}
    return [
        codec
        for codec in RTCRtpSender.getCapabilities(kind).codecs
        if codec.mimeType.lower() in wanted
    ]


def without_remb(answer: str) -> str:
    """The answer without REMB feedback (aiortc always offers it): the stream is passed
    through at its published bitrate, so a viewer's bandwidth estimate would change
    nothing and only cost the server an RTCP packet to receive every half second."""
    return "".join(line for line in answer.splitlines(keepends=True) if not REMB_LINE.match(line))


def check_offer(sdp: str) -> ViewerOffer:
    """The offer if it can be served; a Problem saying what is wrong otherwise."""
    if len(sdp) > MAX_SDP_BYTES:
        raise sdp_too_large()
    description = parse_offer(sdp)
    video = _sections(description, "video")
    audio = _sections(description, "audio")
    if len(video) > 1 or len(audio) > 1:
        raise Problem(422, "too-many-tracks", "Offer one video and at most one audio section.")
    if not video or video[0].direction not in RECEIVING_DIRECTIONS:
        raise Problem(422, "video-required", "The offer must receive a video track.")
    if not _offers(video[0], H264):
        raise Problem(
            422,
            "h264-required",
            "The stream is H.264, passed through without re-encoding: offer H.264 with "
            "packetization-mode=1 and Constrained Baseline (profile-level-id 42e01f).",
        )
    wants_audio = bool(audio) and audio[0].direction in RECEIVING_DIRECTIONS
    if wants_audio and not _offers(audio[0], OPUS):
        raise Problem(422, "opus-required", "The stream's audio is Opus: offer Opus.")
    return ViewerOffer(sdp, audio=wants_audio)


def check_publisher_offer(sdp: str) -> str:
    """A publisher's (WHIP) offer if it sends what the stream hub carries: H.264 video
    and Opus audio, each passed through; a Problem otherwise."""
    if len(sdp) > MAX_SDP_BYTES:
        raise sdp_too_large()
    description = parse_offer(sdp)
    for kind, codec, name in (("video", H264, "H.264"), ("audio", OPUS, "Opus")):
        sections = _sections(description, kind)
        if (
            len(sections) != 1
            or sections[0].direction not in SENDING_DIRECTIONS
            or not _offers(sections[0], codec)
        ):
            raise Problem(
                422,
                f"{name.replace('.', '').lower()}-required",
                f"Offer to send one {kind} track in {name} (with H.264: packetization-mode=1, "
                "Constrained Baseline): it is passed through to viewers without re-encoding.",
            )
    return sdp


def parse_offer(sdp: str) -> SessionDescription:
    """aiortc's parser asserts rather than validates, so any failure means garbage."""
    if not sdp.startswith("v=0"):
        raise malformed_sdp("it does not start with v=0")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as error:
        raise malformed_sdp(type(error).__name__) from None
    if not description.media:
        raise malformed_sdp("it has no media section")
    return description


def sdp_too_large() -> Problem:
    return Problem(413, "sdp-too-large", f"An SDP offer is at most {MAX_SDP_BYTES} bytes.")


def malformed_sdp(reason: str) -> Problem:
    return Problem(400, "malformed-sdp", f"The body is not a usable SDP offer: {reason}.")


def _sections(description: SessionDescription, kind: str) -> list[MediaDescription]:
    return [media for media in description.media if media.kind == kind]


def _offers(media: MediaDescription, mime_type: str) -> bool:
    ours = [codec for codec in codec_preferences(media.kind) if codec.mimeType.lower() == mime_type]
    return any(is_codec_compatible(mine, theirs) for mine in ours for theirs in media.rtp.codecs)
