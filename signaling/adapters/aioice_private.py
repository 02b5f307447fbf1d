"""The private parts of aioice: the shared WebRTC port, and the fast path's socket.

aioice gives each peer sockets of its own: `Connection.get_component_candidates` binds
one per interface address. Here a connection gathers instead one host candidate per
address the port offers (UDP, and TCP passive for ICE-TCP), each an aioice
`StunProtocol` whose transport is the port's (signaling/ice_port.py); everything else
(checks, nomination, consent, close) stays aioice's own. That needs the connection's
`_protocols` list (its candidates' protocols, which it pairs, checks and closes) and
`_local_username` (set to a fragment unique on the port, as routing needs: aioice's
own are four characters, which collide among a few thousand peers). The fast send path
(signaling/adapters/aiortc_private.py) takes the nominated pair (`_nominated`) for its
socket and address, and puts its RTCP filter in front of the pair's protocol. The STUN
parser, candidate helpers and host addresses come from aioice's modules, not its
package. `check()` finds out once at start-up whether this aioice has them; where it
does not, the caller falls back to aioice's own sockets, one port per peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aioice
import aioice.ice
from aioice import stun as stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol

from signaling.adapters import Incompatible, missing_attributes

if TYPE_CHECKING:
    from signaling.ice_port import IcePort

LIBRARY = "aioice"
WRITTEN_FOR = "0.13.0"
CONNECTION_ATTRIBUTES = (
    "_protocols",
    "_local_username",
    "_nominated",
    "get_component_candidates",
)
TCP_PASSIVE_PREFERENCE = (1 << 13) * 4 + 8191  # RFC 6544 4.2: host, passive
RTP_COMPONENT = 1

DatagramHandler = Callable[[bytes, Any], None]


async def check() -> None:
    """Raise Incompatible unless a Connection has what `gather_on` and
    `nominated_pair` use."""
    connection = aioice.Connection(ice_controlling=False)
    missing = missing_attributes(connection, CONNECTION_ATTRIBUTES)
    if missing is None and not isinstance(connection._local_username, str):
        missing = "Connection._local_username string"
    if missing is not None:
        raise Incompatible(LIBRARY, WRITTEN_FOR, missing)


def host_addresses() -> list[str]:
    """The machine's IPv4 and IPv6 interface addresses, as aioice gathers them."""
    return aioice.ice.get_host_addresses(True, True)


def nominated_pair(connection: Any) -> Any | None:
    """The candidate pair ICE nominated for RTP (its `protocol` and `remote_addr`)."""
    return connection._nominated.get(RTP_COMPONENT)


def intercept_datagrams(protocol: Any, handler: DatagramHandler) -> DatagramHandler:
    """Give `protocol`'s datagrams to `handler` instead; returns aioice's own handler,
    for what `handler` passes on."""
    others: DatagramHandler = protocol.datagram_received
    protocol.datagram_received = handler
    return others


def interceptor(protocol: Any) -> object | None:
    """The object whose method `intercept_datagrams` installed on `protocol`, if any."""
    return getattr(protocol.datagram_received, "__self__", None)


def gather_on(connection: Any, port: IcePort) -> None:
    """Make `connection` (not yet gathering) gather its host candidates on `port`."""
    connection._local_username = port.new_ufrag()

    async def get_component_candidates(component: int, **_: Any) -> list[Candidate]:
        candidates = []
        for kind, host, number in port.candidates():
            transport = "tcp" if kind == "tcp" else "udp"
            protocol = StunProtocol(connection)
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", transport, host),
                component=component,
                transport=transport,
                priority=candidate_priority(
                    component, "host", *((TCP_PASSIVE_PREFERENCE,) if kind == "tcp" else ())
                ),
                host=host,
                port=number,
                type="host",
                tcptype="passive" if kind == "tcp" else None,
            )
            port.attach(connection.local_username, connection.local_password, kind, protocol)
            connection._protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        return candidates

    connection.get_component_candidates = get_component_candidates
