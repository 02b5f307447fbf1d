"""What the process offers viewers for ICE, decided once at start: the addresses, and
the shared port (where the start-up check found the internals it needs)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable

from signaling.adapters.aioice_private import host_addresses
from signaling.ice_port import IcePort
from signaling.ice_servers import HOST_NAME, split_list

log = logging.getLogger("streamcart.signaling")


def remote_reachable(address: str) -> bool:
    """Loopback and link-local addresses mean nothing to a viewer on another machine."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def interface_addresses() -> list[str]:
    return [a for a in host_addresses() if remote_reachable(a)]


async def resolve(hosts: Iterable[str]) -> list[str]:
    """Each host name's addresses (an IP stays as given); a name that does not resolve
    is a configuration error, said at start."""
    loop = asyncio.get_running_loop()
    addresses: list[str] = []
    for host in hosts:
        try:
            addresses.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not HOST_NAME.fullmatch(host):
            raise ValueError(
                f"STREAMCART_WEBRTC_PUBLIC_HOSTS: {host!r} is neither an IP address nor a host name"
            )
        try:
            found = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as error:
            raise ValueError(
                f"STREAMCART_WEBRTC_PUBLIC_HOSTS: {host!r} does not resolve ({error})"
            ) from None
        addresses += [str(info[4][0]) for info in found]
    return list(dict.fromkeys(addresses))


async def open_ice_port(
    udp_port: int,
    tcp_port: int,
    public_hosts: str,
    interface_candidates: bool,
    *,
    usable: bool = True,
) -> IcePort | None:
    """The started port, or None for aioice's own sockets per peer: when the setting
    says 0, or when the libraries lack what the port needs (`usable`: the start-up
    check's `Internals.shared_port`, which has logged why)."""
    if not udp_port or not usable:
        return None
    hosts = await resolve(split_list(public_hosts))
    if interface_candidates:
        hosts += interface_addresses()
    if not hosts:
        raise ValueError(
            "no address to offer WebRTC viewers: set STREAMCART_WEBRTC_PUBLIC_HOSTS or "
            "STREAMCART_WEBRTC_INTERFACE_CANDIDATES=true"
        )
    port = IcePort(udp_port, tcp_port or None, hosts)
    try:
        await port.start()
    except OSError as error:
        raise ValueError(
            f"the WebRTC port {udp_port} (UDP) or {tcp_port} (TCP) cannot be opened:"
            f" {error.strerror}; another server may hold it: give each server on a machine"
            " its own STREAMCART_WEBRTC_UDP_PORT and STREAMCART_WEBRTC_TCP_PORT"
        ) from None
    return port
