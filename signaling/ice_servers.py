"""STUN and TURN servers handed to WebRTC viewers, with their TURN credentials.

A viewer behind a NAT that will not let it reach the server's UDP port directly needs a
TURN relay, and a TURN relay needs credentials. They are handed out two ways: as `Link`
headers on the WHEP 201 (RFC 9725, section 4.6, which WHEP reuses) and as browser
`RTCIceServer` dictionaries from `GET /api/webrtc/ice-servers`.

Credentials go with turn: and turns: URLs only, never with stun: ones. With a shared
secret they are time-limited, in the "TURN REST API" scheme coturn implements with
`use-auth-secret` / `static-auth-secret`: the username is `<unix expiry>:<user id>` and
the password `base64(HMAC-SHA1(secret, username))`, so the TURN server checks them
without asking us, and they stop working at the expiry. Without a secret, the static
username and password of the settings are handed out as they are.

Nothing here logs, and no `repr` shows a secret, username or password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

URLS_SETTING = "STREAMCART_WEBRTC_ICE_SERVERS"
SECRET_SETTING = "STREAMCART_TURN_SECRET"  # noqa: S105 (a setting name)
USERNAME_SETTING = "STREAMCART_TURN_USERNAME"
CREDENTIAL_SETTING = "STREAMCART_TURN_CREDENTIAL"
TTL_SETTING = "STREAMCART_TURN_CREDENTIAL_TTL"

STUN_SCHEMES = frozenset({"stun", "stuns"})
TURN_SCHEMES = frozenset({"turn", "turns"})
TRANSPORTS = frozenset({"udp", "tcp"})
GUEST = "guest"

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")  # ASCII, RFC 1123
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class IceUrl:
    """One parsed stun:/stuns:/turn:/turns: URL (RFC 7064, RFC 7065)."""

    scheme: str
    host: str
    port: int | None = None
    transport: str | None = None

    @property
    def is_turn(self) -> bool:
        return self.scheme in TURN_SCHEMES

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        query = "" if self.transport is None else f"?transport={self.transport}"
        return f"{self.scheme}:{host}{port}{query}"


def parse_ice_url(text: str) -> IceUrl:
    """Parse `scheme:host[:port][?transport=udp|tcp]`; ValueError naming the setting and
    the entry when it is not one. The scheme and transport are case-insensitive."""
    try:
        return _parse(text)
    except ValueError as error:
        raise ValueError(f"{URLS_SETTING}: {text!r} is not a STUN/TURN URL: {error}") from None


def split_list(setting: str) -> list[str]:
    """The entries of a comma-separated setting, stripped; empty entries are skipped."""
    return [entry.strip() for entry in setting.split(",") if entry.strip()]


def _parse(text: str) -> IceUrl:
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in STUN_SCHEMES | TURN_SCHEMES:
        raise ValueError("it must start with stun:, stuns:, turn: or turns:")
    if rest.startswith("//"):
        raise ValueError(f"write {scheme}:host, without '//'")
    hostport, question, query = rest.partition("?")
    transport = None
    if question:
        if scheme in STUN_SCHEMES:
            raise ValueError("?transport= is only for turn: and turns: URLs")
        key, equals, value = query.partition("=")
        if key.lower() != "transport" or not equals or value.lower() not in TRANSPORTS:
            raise ValueError("the only query allowed is ?transport=udp or ?transport=tcp")
        transport = value.lower()
    if "@" in hostport:
        raise ValueError(
            "a user name does not go in the URL; set it with "
            f"{USERNAME_SETTING} / {CREDENTIAL_SETTING} or {SECRET_SETTING}"
        )
    host, port_text = _split_host_port(hostport)
    port = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError("the port must be a number from 1 to 65535")
        port = int(port_text)
    return IceUrl(scheme, host, port, transport)


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        literal, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise ValueError("an IPv6 address needs its closing ']'")
        try:
            host = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise ValueError(f"{literal!r} is not an IPv6 address") from None
        if after and not after.startswith(":"):
            raise ValueError("only ':port' may follow the host")
        return host, after[1:] if after else None
    if hostport.count(":") > 1:
        raise ValueError("an IPv6 address goes in brackets, e.g. turn:[2001:db8::1]:3478")
    host, colon, port = hostport.partition(":")
    if not host:
        raise ValueError("the host is missing")
    if HOST_NAME.fullmatch(host) is None:
        raise ValueError(f"{host!r} is not a host name or IPv4 address")
    if all(label.isdigit() for label in host.rstrip(".").split(".")):
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv4 address") from None
    return host, port if colon else None


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server as a viewer gets it (a browser `RTCIceServer`)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_rtc(self) -> dict[str, object]:
        """The browser's `RTCIceServer` dictionary; no credential keys for STUN."""
        server: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None and self.credential is not None:
            server["username"] = self.username
            server["credential"] = self.credential
        return server

    def __repr__(self) -> str:
        hidden = "" if self.username is None else ", username=<hidden>, credential=<hidden>"
        return f"IceServer(urls={self.urls!r}{hidden})"


@dataclass(frozen=True)
class IssuedIceServers:
    """What one viewer is handed: the servers, and when their credentials expire (None
    when nothing expires: static credentials or no TURN)."""

    servers: tuple[IceServer, ...] = ()
    expires_at: datetime | None = None


class IceServers:
    """The configured servers, and the credentials each viewer gets with them.

    `urls` is a list of URLs or the comma-separated setting. With `secret`, TURN
    credentials are time-limited (valid `ttl_seconds`); otherwise `username` and
    `credential` go with every TURN URL. Raises ValueError (at start-up) for a malformed
    URL or TURN URLs without credentials.
    """

    def __init__(
        self,
        urls: str | Iterable[str],
        *,
        secret: str = "",
        username: str = "",
        credential: str = "",
        ttl_seconds: int = 86400,
    ) -> None:
        entries = split_list(urls) if isinstance(urls, str) else list(urls)
        self._urls = tuple(parse_ice_url(entry) for entry in entries)
        self._secret = secret.encode()
        self._username = username
        self._credential = credential
        self._ttl = ttl_seconds
        has_turn = any(url.is_turn for url in self._urls)
        if secret:
            if ttl_seconds < 1:
                raise ValueError(f"{TTL_SETTING} must be at least 1 second")
        elif username or credential or has_turn:
            if not (username and credential):
                raise ValueError(
                    f"TURN URLs in {URLS_SETTING} need credentials: set {SECRET_SETTING} "
                    f"(time-limited, coturn use-auth-secret) or both {USERNAME_SETTING} and "
                    f"{CREDENTIAL_SETTING}"
                    if has_turn
                    else f"set both {USERNAME_SETTING} and {CREDENTIAL_SETTING}, or neither"
                )
            for name, value in ((USERNAME_SETTING, username), (CREDENTIAL_SETTING, credential)):
                if _PRINTABLE.fullmatch(value) is None:
                    raise ValueError(f"{name} may hold printable ASCII characters only")
        self._per_viewer = bool(secret) and has_turn

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(str(url) for url in self._urls)

    @property
    def per_viewer(self) -> bool:
        """True when the credentials depend on who the viewer is (worth finding out)."""
        return self._per_viewer

    def for_viewer(self, user_id: str | None, now: float | None = None) -> IssuedIceServers:
        """The servers for one viewer (`user_id` None or empty for a guest), in the order
        configured; `now` is a Unix time (tests)."""
        if not any(url.is_turn for url in self._urls):
            return IssuedIceServers(tuple(IceServer((str(url),)) for url in self._urls))
        expires_at = None
        if self._secret:
            expiry = int(time.time() if now is None else now) + self._ttl
            username = f"{expiry}:{user_id or GUEST}"
            if _PRINTABLE.fullmatch(username) is None:
                raise ValueError("a user id in a TURN username must be printable ASCII")
            digest = hmac.new(self._secret, username.encode(), hashlib.sha1).digest()
            credential = base64.b64encode(digest).decode("ascii")
            expires_at = datetime.fromtimestamp(expiry, UTC)
        else:
            username, credential = self._username, self._credential
        servers = tuple(
            IceServer((str(url),), username, credential) if url.is_turn else IceServer((str(url),))
            for url in self._urls
        )
        return IssuedIceServers(servers, expires_at)

    def __repr__(self) -> str:
        if self._secret:
            credentials = f"time-limited, {self._ttl} s"
        elif self._username:
            credentials = "static"
        else:
            credentials = "none"
        return f"IceServers(urls={list(self.urls)!r}, credentials={credentials!r})"


def link_headers(servers: Iterable[IceServer]) -> list[str]:
    """One `Link` header value per URL, as RFC 9725 (section 4.6) writes them:
    `<turn:host?transport=udp>; rel="ice-server"; username="u"; credential="p";
    credential-type="password"`, and `<stun:host>; rel="ice-server"` for STUN."""
    links = []
    for server in servers:
        params = '; rel="ice-server"'
        if server.username is not None and server.credential is not None:
            params += (
                f"; username={_quoted(server.username)}"
                f"; credential={_quoted(server.credential)}"
                '; credential-type="password"'
            )
        links.extend(f"<{url}>{params}" for url in server.urls)
    return links


def _quoted(value: str) -> str:
    """An HTTP quoted-string (RFC 9110, section 5.6.4): backslash and double quote
    escaped; control characters cannot be carried at all."""
    if _PRINTABLE.fullmatch(value) is None:
        raise ValueError("a Link parameter may hold printable ASCII characters only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
