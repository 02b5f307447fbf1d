"""One UDP port (and one TCP port) for every WebRTC peer of the process.

A media server that viewers reach across NAT and firewalls offers one well-known port
an operator can open and forward, not a fresh ephemeral port per viewer. Every peer's
ICE host candidates are therefore the same addresses on the same port, and what
arrives there is routed to its peer:

- a STUN binding request by the local half of its USERNAME (each peer has a unique ICE
  username fragment), once its MESSAGE-INTEGRITY proves the sender knows that peer's
  password; its source address is then bound to the peer;
- a STUN response by the transaction it answers (the peer that sent the request);
- everything else (DTLS, SRTP, SRTCP) by its source address, once bound.

Anything else is dropped and counted by reason, never handed to a peer: a stranger
cannot inject DTLS or RTCP into a viewer's session, nor make the server parse it.

The TCP port carries the same messages framed as RFC 4571 says (a 16-bit length before
each), for ICE-TCP passive candidates (RFC 6544): a viewer whose network drops UDP
connects there, and the connection is bound to a peer by its first message, which must
be an authenticated binding request. The peers themselves stay aioice's; how they are
made to gather on this port is in signaling/adapters/aioice_private.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from signaling.adapters.aioice_private import stun

log = logging.getLogger("streamcart.signaling")

Address = tuple[str, int]
STUN_MAGIC = b"\x21\x12\xa4\x42"
STUN_HEADER = 20
CLASS_BITS = 0x0110
REQUEST, RESPONSE, ERROR = 0x0000, 0x0100, 0x0110
SOCKET_BUFFER = 8 * 1024 * 1024  # a frame's burst to every viewer leaves through here
TRANSACTION_SECONDS = 40.0  # longer than any STUN transaction aioice runs
TCP_FRAME = struct.Struct("!H")
TCP_FIRST_MESSAGE_SECONDS = 10.0
TCP_FIRST_MESSAGE_BYTES = 1024  # a binding request is a few hundred bytes
TCP_MAX_UNBOUND = 256  # connections waiting for their first message, at most
TCP_MAX_BUFFERED = 1024 * 1024  # a viewer's TCP stream this far behind loses packets
UFRAG_BYTES = 8
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # linux/socket.h; Python does not name them


def is_stun(data: bytes) -> bool:
    return len(data) >= STUN_HEADER and data[0] < 2 and data[4:8] == STUN_MAGIC


def stun_class(data: bytes) -> int:
    return ((data[0] << 8) | data[1]) & CLASS_BITS


def normal(address: tuple[Any, ...]) -> Address:
    """IPv6 addresses come as 4-tuples; aioice compares 2-tuples."""
    return (address[0], address[1])


@dataclass(eq=False)
class Route:
    """One ICE agent (one viewer's peer) on the port: its credentials and its protocols,
    one per candidate (UDP per address family, TCP)."""

    ufrag: str
    password: bytes
    protocols: dict[str, Any] = field(default_factory=dict)  # "udp4", "udp6", "tcp"


class SharedTransport(asyncio.DatagramTransport):
    """A peer protocol's view of the shared port: sends go out of the one socket (or the
    viewer's TCP connection), and closing it forgets the protocol's routes."""

    def __init__(self, port: IcePort, protocol: Any, kind: str) -> None:
        super().__init__()
        self._port = port
        self._protocol = protocol
        self._kind = kind
        self._closing = False

    def sendto(self, data: bytes, addr: Address | None = None) -> None:  # type: ignore[override]
        if self._closing or addr is None:
            return
        self._port.send(self._kind, self._protocol, data, normal(addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._port.extra_info(self._kind, name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._port.forget(self._protocol)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, port: IcePort) -> None:
        self._port = port

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._port.udp_received(data, normal(addr))

    def error_received(self, exc: Exception) -> None:
        self._port.dropped["socket-error"] += 1


class TcpStream(asyncio.Protocol):
    """One viewer's ICE-TCP connection: RFC 4571 frames in and out."""

    def __init__(self, port: IcePort) -> None:
        self._port = port
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.protocol: Any | None = None  # the peer it was bound to by its first message
        self._first_message: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = normal(transport.get_extra_info("peername"))
        if not self._port.admit_unbound(self):
            transport.close()  # a flood of silent connections holds no more than this
            return
        self._first_message = asyncio.get_running_loop().call_later(
            TCP_FIRST_MESSAGE_SECONDS, self._too_slow
        )

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            (size,) = TCP_FRAME.unpack_from(self._buffer)
            if self.protocol is None and size > TCP_FIRST_MESSAGE_BYTES:
                self._port.dropped["tcp-not-stun"] += 1
                self.close()
                return
            if len(self._buffer) < 2 + size:
                return
            frame = bytes(self._buffer[2 : 2 + size])
            del self._buffer[: 2 + size]
            if not self._port.tcp_received(self, frame):
                self.close()
                return
            if self._first_message is not None:
                self._first_message.cancel()
                self._first_message = None
                self._port.bound(self)

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > TCP_MAX_BUFFERED:
            self._port.dropped["tcp-behind"] += 1
            return
        transport.write(TCP_FRAME.pack(len(data)) + data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._first_message is not None:
            self._first_message.cancel()
            self._port.bound(self)  # no longer waiting, whatever became of it
        self._port.tcp_lost(self)

    def _too_slow(self) -> None:
        self._port.dropped["tcp-silent"] += 1
        self.close()


class IcePort:
    """The UDP socket(s) and TCP listener every peer of the process shares.

    `hosts` are the addresses offered as host candidates (already resolved); the UDP
    socket listens on every address of a family (0.0.0.0, ::) so a public address that
    a NAT maps to this machine works as well as an interface's own.
    """

    def __init__(self, udp_port: int, tcp_port: int | None, hosts: Iterable[str]) -> None:
        """Port 0 is any free port; `tcp_port` None means no ICE-TCP."""
        self.hosts = list(dict.fromkeys(hosts))
        if not self.hosts:
            raise ValueError("a WebRTC port needs at least one address to offer to viewers")
        self._requested = (udp_port, tcp_port)
        self.udp_port = udp_port
        self.tcp_port: int | None = tcp_port
        self.dropped: Counter[str] = Counter()
        self._routes: dict[str, Route] = {}
        self._by_address: dict[Address, Any] = {}
        self._transactions: dict[bytes, tuple[Any, Address, float]] = {}
        self._streams: dict[Address, TcpStream] = {}
        self._udp: dict[int, asyncio.DatagramTransport] = {}
        self._tcp_servers: list[asyncio.Server] = []
        self._protocol_routes: dict[Any, Route] = {}
        self._unbound: set[TcpStream] = set()

    @property
    def families(self) -> set[int]:
        return {socket.AF_INET6 if ":" in host else socket.AF_INET for host in self.hosts}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp_port, tcp_port = self._requested
        for family in sorted(self.families):
            sock = bound_socket(family, socket.SOCK_DGRAM, udp_port)
            transport, _ = await loop.create_datagram_endpoint(lambda: UdpEndpoint(self), sock=sock)
            self._udp[family] = transport
            udp_port = self.udp_port = sock.getsockname()[1]
            if tcp_port is not None:
                listening = bound_socket(family, socket.SOCK_STREAM, tcp_port)
                server = await loop.create_server(lambda: TcpStream(self), sock=listening)
                self._tcp_servers.append(server)
                tcp_port = self.tcp_port = listening.getsockname()[1]
        log.info(
            "WebRTC on one port",
            extra={"udp": self.udp_port, "tcp": self.tcp_port or None, "hosts": self.hosts},
        )

    async def close(self) -> None:
        for server in self._tcp_servers:
            server.close()
        for stream in list(self._streams.values()):
            stream.close()
        for server in self._tcp_servers:
            await server.wait_closed()
        for transport in self._udp.values():
            transport.close()
        self._tcp_servers.clear()
        self._udp.clear()

    # -- peers -------------------------------------------------------------------------

    def new_ufrag(self) -> str:
        """A username fragment no peer on the port has."""
        while True:
            ufrag = secrets.token_hex(UFRAG_BYTES)
            if ufrag not in self._routes:
                return ufrag

    def candidates(self) -> list[tuple[str, str, int]]:
        """(kind, address, port) for each host candidate a peer offers."""
        offered = []
        for host in self.hosts:
            offered.append(("udp6" if ":" in host else "udp4", host, self.udp_port))
        if self._tcp_servers:
            offered += [("tcp", host, self.tcp_port) for host in self.hosts]
        return offered

    def attach(self, ufrag: str, password: str, kind: str, protocol: Any) -> None:
        """Give `protocol` its transport on the port; it receives what is routed to
        `ufrag`'s peer over `kind`."""
        route = self._routes.get(ufrag)
        if route is None:
            route = self._routes[ufrag] = Route(ufrag, password.encode())
        route.protocols[kind] = protocol
        self._protocol_routes[protocol] = route
        protocol.connection_made(SharedTransport(self, protocol, kind))

    def forget(self, protocol: Any) -> None:
        route = self._protocol_routes.pop(protocol, None)
        if route is None:
            return
        route.protocols = {k: p for k, p in route.protocols.items() if p is not protocol}
        if not route.protocols:
            self._routes.pop(route.ufrag, None)
        for address in [a for a, p in self._by_address.items() if p is protocol]:
            del self._by_address[address]
        for stream in [s for s in self._streams.values() if s.protocol is protocol]:
            stream.close()

    @property
    def peers(self) -> int:
        return len(self._routes)

    def extra_info(self, kind: str, name: str, default: Any) -> Any:
        if kind == "tcp":
            return default  # no socket of ours to send a viewer's media on directly
        transport = self._udp_for(kind)
        return default if transport is None else transport.get_extra_info(name, default)

    def _udp_for(self, kind: str) -> asyncio.DatagramTransport | None:
        return self._udp.get(socket.AF_INET6 if kind == "udp6" else socket.AF_INET)

    # -- sending -----------------------------------------------------------------------

    def send(self, kind: str, protocol: Any, data: bytes, addr: Address) -> None:
        if is_stun(data) and stun_class(data) == REQUEST:
            self._remember_transaction(data[8:20], protocol, addr)
        if kind == "tcp":
            stream = self._streams.get(addr)
            if stream is not None and stream.protocol is protocol:
                stream.send(data)
            return
        transport = self._udp_for(kind)
        if transport is not None:
            transport.sendto(data, addr)

    def _remember_transaction(self, transaction_id: bytes, protocol: Any, addr: Address) -> None:
        """Responses from a bound address go straight to its protocol, so entries are
        also dropped by age: a transaction ends well within TRANSACTION_SECONDS."""
        now = time.monotonic()
        transactions = self._transactions
        if len(transactions) > 64 and len(transactions) > 4 * len(self._protocol_routes):
            for key in [
                k for k, (*_, at) in transactions.items() if now - at > TRANSACTION_SECONDS
            ]:
                del transactions[key]
        transactions[transaction_id] = (protocol, addr, now)

    # -- receiving ---------------------------------------------------------------------

    def udp_received(self, data: bytes, addr: Address) -> None:
        """A bound address's datagrams go straight to its peer (aioice checks its STUN
        itself); anything else must route as STUN, which binds the address."""
        protocol = self._by_address.get(addr)
        if protocol is None:
            protocol = self._route_stun(data, addr, "udp6" if ":" in addr[0] else "udp4")
            if protocol is None:
                return
            self._by_address[addr] = protocol
        elif data[:1] == b"\x01" and is_stun(data):  # a response: its transaction is over
            self._transactions.pop(data[8:20], None)
        protocol.datagram_received(data, addr)

    def tcp_received(self, stream: TcpStream, data: bytes) -> bool:
        """False if the connection should be closed: its first message was no
        authenticated binding request, or its peer has gone."""
        addr = stream.peer
        assert addr is not None
        protocol = stream.protocol
        if protocol is None:
            if not is_stun(data) or stun_class(data) != REQUEST:
                self.dropped["tcp-not-stun"] += 1
                return False
            protocol = self._route_stun(data, addr, "tcp")
            if protocol is None:
                return False
            stream.protocol = protocol
            self._streams[addr] = stream
        elif protocol not in self._protocol_routes:
            return False
        protocol.datagram_received(data, addr)
        return True

    def admit_unbound(self, stream: TcpStream) -> bool:
        """Whether a new ICE-TCP connection may wait for its first message."""
        if len(self._unbound) >= TCP_MAX_UNBOUND:
            self.dropped["tcp-too-many"] += 1
            return False
        self._unbound.add(stream)
        return True

    def bound(self, stream: TcpStream) -> None:
        self._unbound.discard(stream)

    def tcp_lost(self, stream: TcpStream) -> None:
        if stream.peer is not None and self._streams.get(stream.peer) is stream:
            del self._streams[stream.peer]

    def _route_stun(self, data: bytes, addr: Address, kind: str) -> Any | None:
        """The protocol a STUN message from an unbound `addr` belongs to (None: dropped,
        and counted by why)."""
        if not is_stun(data):
            self.dropped["unknown-sender"] += 1
            return None
        message_class = stun_class(data)
        if message_class == REQUEST:
            return self._route_request(data, kind)
        if message_class in (RESPONSE, ERROR):
            sent = self._transactions.pop(data[8:20], None)
            if sent is None or sent[1] != addr:
                self.dropped["unknown-transaction"] += 1
                return None
            # The transaction id is 96 random bits only the peer we asked has seen.
            return sent[0]
        self.dropped["stun-indication"] += 1
        return None

    def _route_request(self, data: bytes, kind: str) -> Any | None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.dropped["malformed-stun"] += 1
            return None
        username = message.attributes.get("USERNAME")
        route = self._routes.get(username.partition(":")[0]) if username else None
        protocol = None if route is None else route.protocols.get(kind)
        if route is None or protocol is None:
            self.dropped["unknown-username"] += 1
            return None
        if not message.check_message_integrity(route.password):
            self.dropped["bad-integrity"] += 1
            return None
        return protocol


def bound_socket(family: int, kind: int, port: int) -> socket.socket:
    """A non-blocking socket on every address of `family`, with room for bursts."""
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            for forced, plain in (
                (SO_RCVBUFFORCE, socket.SO_RCVBUF),
                (SO_SNDBUFFORCE, socket.SO_SNDBUF),
            ):
                _grow_buffer(sock, forced, plain)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))  # noqa: S104
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _grow_buffer(sock: socket.socket, forced: int, plain: int) -> None:
    """SO_*BUFFORCE passes the system's cap where allowed (root, CAP_NET_ADMIN);
    otherwise the plain option, which the kernel caps at net.core.*mem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, SOCKET_BUFFER)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
