"""The frame protector: packets laid end to end and SRTP-protected in place must be the
very bytes pylibsrtp's own `Session.protect` makes, and a viewer must read them back.
Every test runs on the C send path (signaling.rtp._sendpath) and on the Python one."""

from __future__ import annotations

import os
import struct

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Error, Policy, Session

from signaling.adapters import Incompatible
from signaling.rtp import srtp_frames
from signaling.rtp.srtp_frames import FrameProtector

PROFILES = {
    Policy.SRTP_PROFILE_AES128_CM_SHA1_80: 30,
    Policy.SRTP_PROFILE_AEAD_AES_128_GCM: 28,
    Policy.SRTP_PROFILE_AEAD_AES_256_GCM: 44,
}
SSRC = 0x11223344
PAYLOAD_TYPE = 102


@pytest.fixture(autouse=True, params=["c", "python"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(srtp_frames, "native", None)
    elif srtp_frames.native is None:
        pytest.skip("signaling.rtp._sendpath is not built here (tests/test_sendpath.py says why)")
    return request.param


def session(key: bytes, profile: int, direction: int) -> Session:
    policy = Policy(key=key, ssrc_type=direction, srtp_profile=profile)
    policy.allow_repeat_tx = True
    return Session(policy)


def pair(profile: int) -> tuple[Session, Session, Session]:
    """Two sending sessions with one key (ours and the reference) and its receiver."""
    key = os.urandom(PROFILES[profile])
    outbound, inbound = Policy.SSRC_ANY_OUTBOUND, Policy.SSRC_ANY_INBOUND
    return (
        session(key, profile, outbound),
        session(key, profile, outbound),
        session(key, profile, inbound),
    )


def header(sequence: int, timestamp: int, marker: bool = False, padded: bool = False) -> bytes:
    first = 0x80 | (0x20 if padded else 0)
    second = PAYLOAD_TYPE | (0x80 if marker else 0)
    return struct.pack("!BBHII", first, second, sequence & 0xFFFF, timestamp, SSRC)


def split(data: memoryview, sizes: list[int]) -> list[bytes]:
    packets, offset = [], 0
    for size in sizes:
        packets.append(bytes(data[offset : offset + size]))
        offset += size
    return packets


@pytest.mark.parametrize("profile", list(PROFILES))
def test_packets_are_what_pylibsrtp_makes_and_unprotect(profile):
    ours, reference, receiver = pair(profile)
    protector = FrameProtector(ours)
    frames = [
        (65534, 9000, [os.urandom(1200)] * 3 + [os.urandom(333)]),  # sequence wraps
        (0, 12000, [os.urandom(90)]),
    ]
    expected = []
    for sequence, timestamp, bodies in frames:
        protector.protect(0x80, PAYLOAD_TYPE, SSRC, sequence, timestamp, bodies, True)
        last = len(bodies) - 1
        expected += [
            reference.protect(header(sequence + i, timestamp, marker=i == last) + body)
            for i, body in enumerate(bodies)
        ]
    packets = protector.take()
    assert split(packets.data, packets.sizes) == expected
    assert len(packets.data) == sum(packets.sizes)
    first = RtpPacket.parse(receiver.unprotect(expected[0]))
    assert (first.sequence_number, first.marker, first.payload) == (65534, 0, frames[0][2][0])


def test_take_starts_afresh_and_no_marker_when_not_asked():
    ours, reference, _ = pair(Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    protector = FrameProtector(ours)
    protector.protect(0x80, PAYLOAD_TYPE, SSRC, 1, 0, [b"a" * 50], True)
    reference.protect(header(1, 0, marker=True) + b"a" * 50)
    protector.take()
    protector.protect(0x80, PAYLOAD_TYPE, SSRC, 2, 0, [b"b" * 60], False)
    packets = protector.take()
    assert packets.sizes == [len(packets.data)]
    assert bytes(packets.data) == reference.protect(header(2, 0) + b"b" * 60)


def test_a_keyframe_larger_than_the_buffer_grows_it_and_earlier_views_survive():
    ours, reference, _ = pair(Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    protector = FrameProtector(ours)
    protector.protect(0x80, PAYLOAD_TYPE, SSRC, 0, 0, [b"s" * 40], True)
    small = protector.take()
    small_bytes = bytes(small.data)
    bodies = [os.urandom(1200) for _ in range(100)]  # about 120 KB: grown more than once
    protector.protect(0x80, PAYLOAD_TYPE, SSRC, 1, 3000, bodies, True)
    big = protector.take()
    reference.protect(header(0, 0, marker=True) + b"s" * 40)
    expected = [
        reference.protect(header(1 + i, 3000, marker=i == 99) + body)
        for i, body in enumerate(bodies)
    ]
    assert split(big.data, big.sizes) == expected
    assert bytes(small.data) == small_bytes


def test_a_failed_protect_leaves_nothing_behind():
    ours, _, _ = pair(Policy.SRTP_PROFILE_AEAD_AES_128_GCM)
    protector = FrameProtector(ours)
    protector.protect(0x80, PAYLOAD_TYPE, SSRC, 1, 0, [b"ok" * 20], True)
    with pytest.raises(Error, match="srtp_protect failed"):
        # the extension bit set without an extension header: libsrtp refuses it
        protector.protect(0x90, PAYLOAD_TYPE, SSRC, 2, 0, [b"\x00"], True)
    assert protector.take().sizes == []


def test_a_pylibsrtp_without_the_internals_is_refused():
    with pytest.raises(Incompatible):
        FrameProtector(object())  # type: ignore[arg-type]
