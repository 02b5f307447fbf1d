"""The private parts of aiortc and aioice that the fan-out's send path uses, in one place.

aiortc keeps signaling, ICE, DTLS, SRTP keys and RTCP; only its per-packet RTP loop is
replaced. That needs a few of its internals: the sender's RTP task hooks and its sender
report counters (name-mangled attributes), the DTLS transport's SRTP session and state,
and the nominated ICE pair's datagram transport; and aiortc's H.264 packetizer
(signaling/packetizer.py subclasses it). `SenderHooks` and `SecureDatagramPath` check
the attributes they use before using them, so an aiortc upgrade that moves them fails
loudly (`AiortcIncompatible`, and tests/test_webrtc_fastpath.py fails) instead of
quietly sending nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCDtlsTransport, RTCRtpCodecParameters, RTCRtpSender
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import (
    RtcpByePacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)

from signaling import srtp_frames
from signaling.datagrams import DatagramSender
from signaling.srtp_frames import FrameProtector

DTLS_CONNECTED = DtlsState.CONNECTED  # an Enum member looked up once, not per frame
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)
SENDER_ATTRIBUTES = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
    "_RTCRtpSender__lsr",
    "_RTCRtpSender__lsr_time",
    "_run_rtp",
    "_run_rtcp",
    "_send_rtcp",
    "_retransmit",
    "_ssrc",
    "_rtx_ssrc",
)
DTLS_ATTRIBUTES = (
    "_state",
    "_tx_srtp",
    "_RTCDtlsTransport__tx_bytes",
    "_RTCDtlsTransport__tx_packets",
)


class AiortcIncompatible(RuntimeError):
    """This aiortc lacks an internal the fast send path relies on."""


def ntp_now() -> int:
    """The wall clock as a 64-bit NTP timestamp (aiortc's goes through datetime: slower)."""
    return int((time.time() + NTP_EPOCH_OFFSET) * (1 << 32))


def _require(target: object, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not hasattr(target, name)]
    if missing:
        raise AiortcIncompatible(f"{type(target).__name__} has no {', '.join(missing)}")


class SenderHooks:
    """One RTCRtpSender whose RTP loop and NACK answer are ours."""

    def __init__(self, sender: RTCRtpSender) -> None:
        _require(sender, SENDER_ATTRIBUTES)
        self.sender = sender

    @property
    def ssrc(self) -> int:
        return self.sender._ssrc

    @property
    def rtx_ssrc(self) -> int:
        return self.sender._rtx_ssrc

    def replace(
        self,
        run_rtp: Callable[[RTCRtpCodecParameters], Awaitable[None]],
        run_rtcp: Callable[[], Awaitable[None]],
        retransmit: Callable[[int], Awaitable[None]],
    ) -> None:
        """aiortc's `send()` starts `_run_rtp` and `_run_rtcp`; its RTCP handler calls
        `_retransmit`."""
        sender: Any = self.sender
        sender._run_rtp = run_rtp
        sender._run_rtcp = run_rtcp
        sender._retransmit = retransmit

    def rtcp_started(self) -> None:
        self.sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]

    def rtcp_exited(self) -> None:
        self.sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    def counts(self) -> tuple[int, int]:
        """The packets and payload bytes sent so far, as aiortc's reports give them."""
        sender: Any = self.sender
        return sender._RTCRtpSender__packet_count, sender._RTCRtpSender__octet_count

    async def send_report(self, cname: str | None) -> None:
        """A sender report (and the CNAME) from aiortc's counters, as aiortc sends it."""
        sender: Any = self.sender
        ntp = sender._RTCRtpSender__ntp_timestamp
        packets: list[Any] = [
            RtcpSrPacket(
                ssrc=sender._ssrc,
                sender_info=RtcpSenderInfo(
                    ntp_timestamp=ntp,
                    rtp_timestamp=sender._RTCRtpSender__rtp_timestamp,
                    packet_count=sender._RTCRtpSender__packet_count & 0xFFFFFFFF,
                    octet_count=sender._RTCRtpSender__octet_count & 0xFFFFFFFF,
                ),
            )
        ]
        self.reported((ntp >> 16) & 0xFFFFFFFF)
        if cname is not None:
            item = RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode())])
            packets.append(RtcpSdesPacket(chunks=[item]))
        await sender._send_rtcp(packets)

    def reported(self, lsr: int) -> None:
        """A sender report went out: what aiortc matches receiver reports against for
        the round-trip time."""
        sender: Any = self.sender
        sender._RTCRtpSender__lsr = lsr
        sender._RTCRtpSender__lsr_time = time.time()

    async def send_bye(self) -> None:
        sender: Any = self.sender
        await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])

    def rtp_started(self) -> None:
        self.sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]

    def rtp_exited(self) -> None:
        """`RTCRtpSender.stop()` waits for this."""
        self.sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    def count_sent(self, packets: int, octets: int, ntp: int, rtp_timestamp: int) -> None:
        """What aiortc's RTCP loop puts in its sender reports."""
        sender: Any = self.sender
        sender._RTCRtpSender__packet_count += packets
        sender._RTCRtpSender__octet_count += octets
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp


class SecureDatagramPath:
    """SRTP protection (aiortc's session for this transport, driven a frame at a time)
    and the socket of one connected DTLS transport."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        _require(dtls, DTLS_ATTRIBUTES)
        self._dtls: Any = dtls
        if dtls._state is not DTLS_CONNECTED:
            raise ConnectionError("DTLS is not connected")
        self.protector = FrameProtector(dtls._tx_srtp)
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("ICE has no nominated pair")
        self.datagrams = DatagramSender(pair.protocol.transport, pair.remote_addr)

    @property
    def connected(self) -> bool:
        return self._dtls._state is DTLS_CONNECTED

    def on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when DTLS leaves the connected state; returns the undo."""

        def changed() -> None:
            if not self.connected:
                callback()

        self._dtls.on("statechange", changed)
        return lambda: self._dtls.remove_listener("statechange", changed)

    def native_state(
        self,
        first_byte: int,
        payload_type: int,
        ssrc: int,
        sequence: int,
        offset: int,
        cname: str | None,
        counts: tuple[int, int],
    ) -> Any:
        """A `ViewerState` for the C fan-out (signaling/_sendpath.c) on this transport's
        SRTP session and socket; None where the C send path is not available."""
        target, native = self.datagrams.native_target, srtp_frames.native
        if native is None or target is None:
            return None
        fd, address, segmented = target
        return native.ViewerState(
            *self.protector.addresses,
            self.protector.rtcp_address,
            fd,
            address,
            segmented,
            first_byte,
            payload_type,
            ssrc,
            sequence,
            offset,
            (cname or "").encode(),
            *counts,
        )

    def count_sent(self, packets: int, octets: int) -> None:
        """Keeps the transport's getStats() figures right."""
        self._dtls._RTCDtlsTransport__tx_packets += packets
        self._dtls._RTCDtlsTransport__tx_bytes += octets
