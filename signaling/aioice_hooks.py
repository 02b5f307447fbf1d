"""The private parts of aioice that put a peer's ICE on the shared WebRTC port.

aioice gives each peer sockets of its own: `Connection.get_component_candidates` binds
one per interface address. Here a connection gathers instead one host candidate per
address the port offers (UDP, and TCP passive for ICE-TCP), each an aioice
`StunProtocol` whose transport is the port's (signaling/ice_port.py); everything else
(checks, nomination, consent, close) stays aioice's own. That needs the connection's
`_protocols` list (its candidates' protocols, which it pairs, checks and closes) and
`_local_username` (set to a fragment unique on the port, as routing needs: aioice's
own are four characters, which collide among a few thousand peers). `check()` finds
out at start-up whether this aioice has them; where it does not, the caller falls back
to aioice's own sockets, one port per peer.
"""

from __future__ import annotations

from typing import Any

import aioice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol

from signaling.ice_port import IcePort

CONNECTION_ATTRIBUTES = ("_protocols", "_local_username", "get_component_candidates")
TCP_PASSIVE_PREFERENCE = (1 << 13) * 4 + 8191  # RFC 6544 4.2: host, passive


class AioiceIncompatible(RuntimeError):
    """This aioice lacks an internal the shared port relies on."""


def check() -> None:
    """Raise AioiceIncompatible, naming the version, unless a Connection has what
    `gather_on` uses."""
    connection = aioice.Connection(ice_controlling=False)
    missing = [name for name in CONNECTION_ATTRIBUTES if not hasattr(connection, name)]
    if missing or not isinstance(connection._local_username, str):
        raise AioiceIncompatible(
            f"aioice {getattr(aioice, '__version__', '?')} has no Connection."
            f"{', '.join(missing) or '_local_username string'}"
        )


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
