"""The private parts of aiortc that the WebRTC fast path uses, in one place.

aiortc keeps signaling, ICE, DTLS, SRTP keys and RTCP; only its per-packet RTP loop is
replaced (signaling/rtp/rtp_sender.py), and a viewer's receiver reports are dropped
before they reach it (`ReportFilter`). That needs a few of its internals: the sender's
RTP task hooks and its sender report counters (name-mangled attributes), the DTLS
transport's SRTP sessions, state and RTCP handler, the ICE gatherer's and transport's
aioice connection, and its H.264 packetizer's static methods; and, from aiortc's
modules rather than its package, helpers the fast path and the offer check share with
it (RTCP packets, header extensions, RTX, SDP parsing, codec matching, random
origins). `check()` finds out once at start-up (signaling/adapters/checks.py) whether
this aiortc has them all; where it does not, viewers are served by aiortc's own public
sending path (signaling/hub_track.py) instead. `SenderHooks` and `SecureDatagramPath`
check again what they use, per viewer. A WHIP publisher's receivers hand over encoded
frames instead of decoding them (`receive_encoded`, checked by `check_receiver`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Awaitable, Callable
from typing import Any

import pylibsrtp
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.codecs import is_rtx as is_rtx
from aiortc.codecs.h264 import FU_A_HEADER_SIZE, NAL_TYPE_FU_A, PACKET_MAX, H264Encoder
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcpeerconnection import is_codec_compatible as is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpSendParameters as RTCRtpSendParameters
from aiortc.rtcrtpsender import random_sequence_number as random_sequence_number
from aiortc.rtp import (
    RtcpByePacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    is_rtcp,
)
from aiortc.rtp import pack_header_extensions as pack_header_extensions
from aiortc.sdp import MediaDescription as MediaDescription
from aiortc.sdp import SessionDescription as SessionDescription
from aiortc.utils import random32 as random32

from signaling.adapters import Incompatible, aioice_private, missing_attributes
from signaling.rtp import srtp_frames
from signaling.rtp.budget import Budget
from signaling.rtp.datagrams import DatagramSender
from signaling.rtp.srtp_frames import FrameProtector

LIBRARY = "aiortc"
WRITTEN_FOR = "1.16.0"
DTLS_CONNECTED = DtlsState.CONNECTED  # an Enum member looked up once, not per frame
SENDER_ATTRIBUTES = (
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__octet_count",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
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
    "_rx_srtp",
    "_handle_rtcp_data",
    "_RTCDtlsTransport__tx_bytes",
    "_RTCDtlsTransport__tx_packets",
    "_RTCDtlsTransport__rx_bytes",
    "_RTCDtlsTransport__rx_packets",
)
RECEIVER_ATTRIBUTES = ("_RTCRtpReceiver__decoder_queue", "_send_rtcp_pli")
ICE_ATTRIBUTES = ("_connection",)  # of RTCIceGatherer and RTCIceTransport
PACKETIZER_ATTRIBUTES = ("_split_bitstream", "_packetize", "_packetize_fu_a")
REPORT_PACKET_TYPES = frozenset((201, 202))  # RTCP receiver reports, source descriptions
RTCP_PER_SECOND = 100  # other RTCP packets (NACK, PLI) aiortc handles per viewer

log = logging.getLogger("streamcart.signaling")


def _require(target: object, names: tuple[str, ...]) -> None:
    missing = missing_attributes(target, names)
    if missing is not None:
        raise Incompatible(LIBRARY, WRITTEN_FOR, missing)


async def check() -> None:
    """Raise Incompatible unless a sender and transports made here (a peer that never
    connects: no sockets) have every internal this module uses."""
    peer = RTCPeerConnection()
    try:
        sender = peer.addTransceiver("video", direction="sendonly").sender
        dtls = sender.transport
        _require(sender, SENDER_ATTRIBUTES)
        _require(dtls, DTLS_ATTRIBUTES)
        _require(dtls.transport.iceGatherer, ICE_ATTRIBUTES)
        _require(dtls.transport, ICE_ATTRIBUTES)
        _require(H264Encoder, PACKETIZER_ATTRIBUTES)
    finally:
        await peer.close()


async def check_receiver() -> None:
    """Raise Incompatible unless a receiver made here has what `receive_encoded` and
    `send_pli` use (WHIP publishers need them; the viewers' fast path does not)."""
    peer = RTCPeerConnection()
    try:
        _require(peer.addTransceiver("video", direction="recvonly").receiver, RECEIVER_ATTRIBUTES)
    finally:
        await peer.close()


class EncodedFrames(queue.Queue):
    """Stands in for a receiver's decoder queue: each frame its jitter buffer reassembles
    (an Annex-B access unit, an Opus packet) goes to `deliver` with its RTP timestamp
    (counted from the track's first frame) instead of to aiortc's decoder thread, which
    idles until the receiver stops it."""

    def __init__(self, deliver: Callable[[bytes, int], None]) -> None:
        super().__init__()
        self._deliver = deliver

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stopping its decoder thread
            super().put(item, block, timeout)
            return
        _codec, frame = item
        self._deliver(frame.data, frame.timestamp)


def receive_encoded(receiver: RTCRtpReceiver, deliver: Callable[[bytes, int], None]) -> None:
    """Make `receiver` (not started yet) hand its encoded frames to `deliver`."""
    _require(receiver, RECEIVER_ATTRIBUTES)
    receiver._RTCRtpReceiver__decoder_queue = EncodedFrames(deliver)  # type: ignore[attr-defined]


async def send_pli(receiver: RTCRtpReceiver) -> None:
    """Ask the sender of `receiver`'s track for a keyframe (RTCP picture loss)."""
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)


def ice_connections(peer: RTCPeerConnection) -> list[Any]:
    """The aioice connection under each ICE transport of `peer` (one when bundled)."""
    gatherers = {t.sender.transport.transport.iceGatherer for t in peer.getTransceivers()}
    for gatherer in gatherers:
        _require(gatherer, ICE_ATTRIBUTES)
    return [gatherer._connection for gatherer in gatherers]


class EvenFragmentsPacketizer(H264Encoder):
    """aiortc's H.264 packetizer (STAP-A, FU-A), but a NAL unit's FU-A fragments are all
    full-size except the last (aiortc spreads the remainder over them): a run of
    equal-size datagrams is what one segmentation-offload send takes."""

    @staticmethod
    def _packetize_fu_a(data: bytes) -> list[bytes]:
        indicator = (data[0] & 0xE0) | NAL_TYPE_FU_A
        nal_type = data[0] & 0x1F
        step = PACKET_MAX - FU_A_HEADER_SIZE
        starts = range(1, len(data), step)
        last = starts[-1]
        return [
            bytes((indicator, nal_type | (0x80 if at == 1 else 0) | (0x40 if at == last else 0)))
            + data[at : at + step]
            for at in starts
        ]


def h264_payloads(access_unit: bytes) -> list[bytes]:
    """The RTP payloads of one Annex-B access unit, as `EvenFragmentsPacketizer` cuts it."""
    nal_units = EvenFragmentsPacketizer._split_bitstream(access_unit)
    return EvenFragmentsPacketizer._packetize(nal_units)


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
        configure: Callable[[RTCRtpSendParameters], None],
        run_rtp: Callable[[RTCRtpCodecParameters], Awaitable[None]],
        run_rtcp: Callable[[], Awaitable[None]],
        retransmit: Callable[[int], Awaitable[None]],
    ) -> None:
        """aiortc's `send()` (given the negotiated parameters, which `configure` sees
        first) starts `_run_rtp` and `_run_rtcp`; its RTCP handler calls `_retransmit`."""
        sender: Any = self.sender
        start = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            configure(parameters)
            await start(parameters)

        sender.send = send
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
        if cname is not None:
            item = RtcpSourceInfo(ssrc=sender._ssrc, items=[(1, cname.encode())])
            packets.append(RtcpSdesPacket(chunks=[item]))
        await sender._send_rtcp(packets)

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
        ice: RTCIceTransport = dtls.transport
        _require(ice, ICE_ATTRIBUTES)
        pair = aioice_private.nominated_pair(ice._connection)
        if pair is None:
            raise ConnectionError("ICE has no nominated pair")
        self.datagrams = DatagramSender(pair.protocol.transport, pair.remote_addr)
        ReportFilter.install(dtls, pair.protocol)

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
        """A `ViewerState` for the C fan-out (signaling/rtp/_sendpath.c) on this
        transport's SRTP session and socket; None where the C send path is not built."""
        target, native = self.datagrams.native_target, srtp_frames.native
        if native is None or target is None:
            return None
        fd, address, segmented = target
        packets, octets = counts
        return native.ViewerState(
            srtp=self.protector.srtp,
            fd=fd,
            address=address,
            segmented=segmented,
            first_byte=first_byte,
            payload_type=payload_type,
            ssrc=ssrc,
            sequence=sequence,
            timestamp_offset=offset,
            cname=(cname or "").encode(),
            packets=packets,
            octets=octets,
        )

    def count_sent(self, packets: int, octets: int) -> None:
        """Keeps the transport's getStats() figures right."""
        self._dtls._RTCDtlsTransport__tx_packets += packets
        self._dtls._RTCDtlsTransport__tx_bytes += octets


def only_reports(packet: bytes) -> bool:
    """Whether a decrypted compound RTCP packet holds receiver reports and source
    descriptions only (a malformed one is not: aiortc gets it, and says so)."""
    at, end = 0, len(packet)
    while at + 4 <= end:
        if packet[at + 1] not in REPORT_PACKET_TYPES:
            return False
        at += 4 * (int.from_bytes(packet[at + 2 : at + 4], "big") + 1)
    return 0 < at == end


class ReportFilter:
    """A viewer's RTCP taken off aiortc's path where it arrives: at the nominated ICE
    pair's datagram protocol (aioice's), ahead of aiortc's queue.

    aiortc queues each datagram, wakes its DTLS task, decrypts, parses the packets into
    objects and routes them: tens of microseconds per receiver report, and a viewer
    sends one or two a second for figures (loss, round-trip time) that nothing here
    reads. Those are counted and dropped; other RTCP (NACK, PLI, BYE) is decrypted here
    and handed to aiortc's handler at once, up to RTCP_PER_SECOND packets (one NACK
    packet can ask for thousands of retransmissions, and aiortc parses it in Python).
    Everything else (DTLS, STUN) goes on as before.
    """

    def __init__(self, dtls: Any, protocol: Any) -> None:
        self._dtls = dtls
        self._handling: set[asyncio.Future[None]] = set()
        self._budget = Budget(
            RTCP_PER_SECOND,
            f"a WebRTC viewer sends more than {RTCP_PER_SECOND} RTCP packets a second "
            "besides its reports; the rest are dropped",
        )
        self._others = aioice_private.intercept_datagrams(protocol, self.datagram_received)

    @classmethod
    def install(cls, dtls: Any, protocol: Any) -> None:
        """Once per protocol: a viewer's audio and video senders share it."""
        if not isinstance(aioice_private.interceptor(protocol), cls):
            cls(dtls, protocol)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        dtls = self._dtls
        session = dtls._rx_srtp
        if session is None or not data or not 127 < data[0] < 192 or not is_rtcp(data):
            self._others(data, addr)
            return
        dtls._RTCDtlsTransport__rx_bytes += len(data)
        dtls._RTCDtlsTransport__rx_packets += 1
        try:
            packet = session.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return  # as aiortc does: dropped
        if only_reports(packet):
            return
        if not self._budget.take():
            return
        handling = asyncio.ensure_future(dtls._handle_rtcp_data(packet))
        self._handling.add(handling)
        handling.add_done_callback(self._handled)

    def _handled(self, handling: asyncio.Future[None]) -> None:
        """aiortc's own loop would have closed the transport on an error here; one
        viewer's bad RTCP is logged instead, and it goes on being served."""
        self._handling.discard(handling)
        if not handling.cancelled() and handling.exception() is not None:
            log.warning("handling a WebRTC viewer's RTCP failed", exc_info=handling.exception())
