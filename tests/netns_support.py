"""A server and a viewer on different hosts with NAT between them: network namespaces.

    server ns                  router ns                             viewer ns
    eth0 198.18.1.1/24 ---- wan0 198.18.1.254/24                     (default route via
    (no default route)         lan0 198.19.2.254/24 ---- eth0 198.19.2.10/24  the router)
                               forwards; MASQUERADE out of wan0

Every address is in 198.18.0.0/15 (RFC 2544's benchmarking range) and lives only in the
namespaces a test creates: nothing is routed, NATed or filtered in the host's own
namespace, and every namespace, process and rule goes away on the way out (the rules and
the veths go with their namespaces). The server has no route to the viewer's private
network, so it can answer the viewer only at the router's public address, as a real
server on the internet answers a viewer behind a home router.

- `NatTopology`: the three namespaces (`block_udp=True`: the router forwards TCP only;
  `Impairment`: loss and delay on the router), `spawn`/`run` a command in one of them;
- `serving`: a real `streamcart serve` in the server namespace (HTTP on 8080, RTMP on
  1935 there), reached from the test through `HostToNamespaceProxy` (127.0.0.1:<free
  port> here, a connection made from inside the namespace there);
- `scheduled_session`: a seller's session and its stream key, over the REST API;
- `publish`: the ffmpeg CLI publishing from inside the server namespace;
- `chromium`: headless Chromium in the viewer namespace on the server's origin
  http://198.18.1.1:8080/healthz (`ChromiumViewer`: `offer(config)`, `watch`, ...);
- `Coturn`: Debian's turnserver on 198.18.1.1:3478 with time-limited credentials;
  `stun_binding` and `turn_allocation` ask it from any namespace.

A server in the namespace reaches only what is in there: embedded backends (SQLite,
in-process bus and cache), not a PostgreSQL or Redis on the host's loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol
from yarl import URL

from live.settings import Settings
from storage.sql import make_engine
from storage.sql.migrate import upgrade
from tests.backends import IN_CI
from tests.chromium_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ChromiumViewer,
    NetworkNamespace,
    chromium_in,
)
from tests.commerce_support import seller_with_shop
from tests.rtmp_support import ffmpeg_publish_args, finished_within
from tests.server_process import HOST, ServerApi, ServerProcess, clean_env
from tests.tcp_proxy import TcpProxy
from tests.test_auth import bearer

SERVER_IP = "198.18.1.1"  # public network 198.18.1.0/24
ROUTER_PUBLIC_IP = "198.18.1.254"  # what the server sees of any viewer: the NAT
ROUTER_PRIVATE_IP = "198.19.2.254"  # private network 198.19.2.0/24
VIEWER_IP = "198.19.2.10"
PREFIX = 24
SERVER_IF, WAN_IF, LAN_IF, VIEWER_IF = "eth0", "wan0", "lan0", "eth0"
HTTP_PORT = 8080  # inside the server namespace, free by construction
RTMP_PORT = 1935
TURN_PORT = 3478
TURN_REALM = "streamcart.test"
SERVER_URL = URL.build(scheme="http", host=SERVER_IP, port=HTTP_PORT)
TOOLS = ("ip", "iptables", "sysctl")
STOP_WITHIN = 5.0
ANSWER_WITHIN = 10.0
# As for the loopback viewer, minus loopback candidates: here the viewer has a real
# interface, and 127.0.0.1 would only send the server's checks to itself.
NAT_CHROMIUM_ARGS = tuple(a for a in CHROMIUM_ARGS if a != "--allow-loopback-in-peer-connection")


def _unavailable(message: str, *, in_ci_too: bool = True) -> None:
    if IN_CI and in_ci_too:
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


def _check(argv: Sequence[str]) -> None:
    """Run a setup command; fail with what it said if it fails."""
    done = subprocess.run(argv, capture_output=True, timeout=10)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.decode(errors='replace')}"


def _ip(*argv: str) -> None:
    _check(["ip", *argv])


def require_netns(*tools: str) -> None:
    """Root, iproute2, iptables and `tools` (e.g. "chromium", "ffmpeg", "turnserver");
    fail under CI=true, skip elsewhere (`make media-tools` installs them)."""
    wanted = [*TOOLS, *(CHROMIUM if tool == "chromium" else tool for tool in tools)]
    missing = [tool for tool in wanted if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root (to create network namespaces)")
    if missing:
        _unavailable(f"the NAT topology needs {', '.join(missing)}")


@dataclass(frozen=True)
class Impairment:
    """What the router does to every packet it forwards, each way: `loss_percent` are
    dropped (iptables' statistic match), the rest wait `delay_ms` +- `jitter_ms` (tc
    netem on both of its interfaces, so a round trip takes twice the delay)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0


class NatTopology:
    """Server, router and viewer namespaces (see the module's docstring), as a context
    manager: `with NatTopology(block_udp=True) as net: ...`.

    `block_udp`: the router drops every UDP packet it would forward, so only TCP crosses
    (a viewer on a network that allows web traffic only)."""

    def __init__(self, *, block_udp: bool = False, impairment: Impairment | None = None) -> None:
        self.block_udp = block_udp
        self.impairment = impairment or Impairment()
        self.server: NetworkNamespace
        self.router: NetworkNamespace
        self.viewer: NetworkNamespace
        self.server_url = SERVER_URL
        self._processes: list[subprocess.Popen[bytes]] = []
        self._running: set[asyncio.subprocess.Process] = set()
        self._exit = contextlib.ExitStack()

    @property
    def namespaces(self) -> tuple[NetworkNamespace, ...]:
        return (self.server, self.router, self.viewer)

    def __enter__(self) -> NatTopology:
        require_netns()
        with contextlib.ExitStack() as stack:
            self.server = stack.enter_context(NetworkNamespace.created("server"))
            self.router = stack.enter_context(NetworkNamespace.created("router"))
            self.viewer = stack.enter_context(NetworkNamespace.created("viewer"))
            stack.callback(self._stop_processes)  # before the namespaces go
            self._wire()
            self._exit = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._exit.close()

    def _wire(self) -> None:
        server, router, viewer = self.server.name, self.router.name, self.viewer.name
        _ip("link", "add", SERVER_IF, "netns", server, "type", "veth", "peer", WAN_IF,
            "netns", router)  # fmt: skip
        _ip("link", "add", LAN_IF, "netns", router, "type", "veth", "peer", VIEWER_IF,
            "netns", viewer)  # fmt: skip
        for namespace, interface, address in [
            (server, SERVER_IF, SERVER_IP),
            (router, WAN_IF, ROUTER_PUBLIC_IP),
            (router, LAN_IF, ROUTER_PRIVATE_IP),
            (viewer, VIEWER_IF, VIEWER_IP),
        ]:
            _ip("-n", namespace, "address", "add", f"{address}/{PREFIX}", "dev", interface)
            _ip("-n", namespace, "link", "set", interface, "up")
        _ip("-n", viewer, "route", "add", "default", "via", ROUTER_PRIVATE_IP)
        self.router_command("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.router_command("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", WAN_IF,
                            "-j", "MASQUERADE")  # fmt: skip
        if self.block_udp:
            self.router_command("iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP")
        self._impair()

    def _impair(self) -> None:
        loss, delay = self.impairment.loss_percent, self.impairment.delay_ms
        if loss:
            share = ["-m", "statistic", "--mode", "random", "--probability", f"{loss / 100:.4f}"]
            self.router_command("iptables", "-A", "FORWARD", *share, "-j", "DROP")
        if not delay:
            return
        for interface in (WAN_IF, LAN_IF):
            netem = ["tc", "qdisc", "add", "dev", interface, "root", "netem", "delay"]
            netem += [f"{delay}ms", f"{self.impairment.jitter_ms}ms"]
            done = subprocess.run(self.router.command(*netem), capture_output=True, timeout=10)
            if done.returncode and b"qdisc kind is unknown" in done.stderr:
                # A kernel option, not a package CI could install: skip, even under CI.
                _unavailable("this kernel has no netem qdisc (delay)", in_ci_too=False)
            assert done.returncode == 0, done.stderr.decode(errors="replace")

    def router_command(self, *argv: str) -> None:
        _check(self.router.command(*argv))

    # --- processes ----------------------------------------------------------------------

    def spawn(
        self,
        namespace: NetworkNamespace,
        *argv: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """`argv` started inside `namespace`, its output in `log_path`; stopped (SIGTERM,
        then SIGKILL) when the topology closes, if it has not exited by then."""
        process = start_logged(namespace.command(*argv), log_path, env)
        self._processes.append(process)
        return process

    def adopt(self, process: subprocess.Popen[bytes]) -> None:
        """Stop `process` too when the topology closes (if it is still running)."""
        self._processes.append(process)

    async def run(
        self,
        namespace: NetworkNamespace,
        *argv: str,
        env: Mapping[str, str] | None = None,
        seconds: float = 10.0,
    ) -> tuple[int, str, str]:
        """Run `argv` inside `namespace` to its end: exit code, stdout, stderr. Killed
        after `seconds`, when the caller is cancelled or when the topology closes."""
        process = await asyncio.create_subprocess_exec(
            *namespace.command(*argv),
            env=None if env is None else dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._running.add(process)
        try:
            return await finished_within(process, seconds)
        finally:
            self._running.discard(process)

    def _stop_processes(self) -> None:
        for running in self._running:  # `run`'s, whose caller was not waiting (a task)
            with contextlib.suppress(ProcessLookupError):
                running.kill()  # reaped by asyncio
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
                process.wait()

    # --- the app, its publisher and its viewer ----------------------------------------

    @contextlib.asynccontextmanager
    async def serving(
        self, tmp_path: Path, settings: Mapping[str, str] | None = None
    ) -> AsyncIterator[ServerApi]:
        """A migrated, ready `streamcart serve` in the server namespace on SQLite (data
        dir and log `server.log` under `tmp_path`), HTTP on 0.0.0.0:8080 and RTMP on
        0.0.0.0:1935 there, WebRTC on the app's defaults (the only interface address
        is 198.18.1.1) with `settings` (e.g. STREAMCART_WEBRTC_*) on top; an
        aiohttp client reaches it through a host-side proxy (`api.server.make_url`).
        Stopped on the way out; an unclean exit fails the test with its log's end."""
        env = {  # WebRTC as the app deploys it by default, unless `settings` say otherwise
            name: value
            for name, value in clean_env(tmp_path / "server").items()
            if not name.startswith("STREAMCART_WEBRTC_")
        }
        env.update(
            STREAMCART_RTMP_PORT=str(RTMP_PORT),
            STREAMCART_PUBLIC_URL=str(self.server_url),
            STREAMCART_PASSWORD_TIME_COST="1",
            STREAMCART_PASSWORD_MEMORY_KIB="1024",
            STREAMCART_SHUTDOWN_TIMEOUT="2",
        )
        env.update(settings or {})
        await _migrated(env)
        async with HostToNamespaceProxy(self.server, HTTP_PORT) as port:
            server = NamespacedServer(self, env, tmp_path / "server.log", port)
            self.adopt(server.process)
            try:
                async with aiohttp.ClientSession() as http:
                    await server.wait_ready(http)
                    yield ServerApi(server, http)
            finally:
                code = await server.stop()
                print(server.explain("stopped"))  # pytest shows it when the test fails
            assert code == 0, server.explain(f"exit code {code}")

    async def publish(
        self, key: str, seconds: float = 3.0, *, source: Path | None = None, app: str = "live"
    ) -> tuple[int, str]:
        """ffmpeg in the server namespace publishing to the app's RTMP port there until
        it ends: a test pattern with a tone for `seconds`, or else the encoded file
        `source` re-sent in real time (as `tests.test_streaming.push`). Its exit code
        and stderr. Killed when cancelled, when it runs a minute longer than `seconds`,
        or when the topology closes."""
        if source is None:
            args = ffmpeg_publish_args(RTMP_PORT, key, seconds, app=app)
        else:
            args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
                    "-i", str(source), "-c", "copy", "-f", "flv",
                    f"rtmp://127.0.0.1:{RTMP_PORT}/{app}/{key}"]  # fmt: skip
        code, _, err = await self.run(self.server, *args, seconds=seconds + 60)
        return code, err

    def chromium(
        self, scratch: Path, args: Sequence[str] = NAT_CHROMIUM_ARGS
    ) -> contextlib.AbstractAsyncContextManager[ChromiumViewer]:
        """Headless Chromium in the viewer namespace, on the page
        http://198.18.1.1:8080/healthz (so the WHEP fetch is same-origin). Like an
        ordinary page it may not list interfaces: it offers the address of its default
        route, 198.19.2.10 (`--disable-features=WebRtcHideLocalIpsWithMdns`: no mDNS)."""
        return chromium_in(self.viewer, self.server_url, scratch, args, permissions=())


async def scheduled_session(api: ServerApi, email: str = "seller@example.com") -> dict[str, Any]:
    """A seller's shop and a session scheduled in 5 minutes, made over the REST API:
    {"token", "user", "shop", "live", "key"} (`key`: its RTMP stream key)."""
    seller = await seller_with_shop(api, email)
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Across the NAT",
            "scheduled_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        },
        headers=bearer(seller["token"]),
    )
    assert response.status == 201, await response.text()
    live = await response.json()
    return {**seller, "live": live, "key": live["stream"]["stream_key"]}


async def until_live(api: ServerApi, live_id: str, seconds: float = 20.0) -> None:
    """Wait until the session's status is live (its publisher is in)."""
    async with asyncio.timeout(seconds):
        while True:
            response = await api.get(f"/api/live-sessions/{live_id}")
            if (await response.json())["status"] == "live":
                return
            await asyncio.sleep(0.1)


async def _migrated(env: Mapping[str, str]) -> None:
    """What `streamcart migrate` does, in this process (no Python to start: 3 s less)."""
    settings = Settings.from_env(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class NamespacedServer(ServerProcess):
    """`streamcart serve` in the topology's server namespace on 0.0.0.0:8080, whose
    URLs (`make_url`, used by `wait_ready` and `ServerApi`) are those of the host-side
    proxy on `proxy_port`."""

    def __init__(
        self, topology: NatTopology, env: Mapping[str, str], log_path: Path, proxy_port: int
    ) -> None:
        everywhere = "0.0.0.0"  # noqa: S104 (every interface of the server namespace)
        prefix = topology.server.command()
        super().__init__(env, log_path, prefix=prefix, host=everywhere, port=HTTP_PORT)
        self.proxy_port = proxy_port

    def make_url(self, path: str = "/") -> URL:
        return URL.build(scheme="http", host=HOST, port=self.proxy_port).join(URL(path))


class HostToNamespaceProxy(TcpProxy):
    """Listens on 127.0.0.1:<free port> in the test process; forwards each connection to
    `host`:`port` as seen from inside `namespace` (its socket is created there).
    `async with HostToNamespaceProxy(ns, 8080) as port: ...`"""

    def __init__(self, namespace: NetworkNamespace, port: int, host: str = HOST) -> None:
        super().__init__(host, port)
        self._namespace = namespace

    async def __aenter__(self) -> int:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(sock=await connected(self._namespace, self._target))


def start_logged(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`argv` started with its output (stdout and stderr) in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def connected(
    namespace: NetworkNamespace | None, address: tuple[str, int], kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A non-blocking socket of `namespace` (None: this process's own network), connected
    to `address` from there."""
    sock = socket.socket(socket.AF_INET, kind) if namespace is None else namespace.socket(kind)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


# --- TURN ---------------------------------------------------------------------------


class Coturn:
    """Debian's turnserver in the server namespace on 198.18.1.1:3478 (UDP and TCP, no
    TLS or DTLS), with time-limited credentials from `secret` (use-auth-secret, as the
    app's STREAMCART_TURN_SECRET) and relaying to its own address; config and log in
    `directory`. `async with Coturn(net, tmp_path) as turn:` waits until it answers
    STUN, and stops it on the way out. With no topology it runs in this process's
    network on `address` (a loopback one)."""

    def __init__(
        self,
        topology: NatTopology | None,
        directory: Path,
        secret: str = "streamcart-turn-secret",
        address: tuple[str, int] = (SERVER_IP, TURN_PORT),
    ) -> None:
        self.topology = topology
        self.secret = secret
        self.address = address
        self.config_path = directory / "turnserver.conf"
        self.log_path = directory / "turnserver.log"
        self._output = directory / "turnserver.out"
        self._directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        ip, port = self.address
        lines = [
            f"listening-ip={ip}",
            f"relay-ip={ip}",
            f"listening-port={port}",
            "min-port=49152",
            "max-port=65535",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            f"realm={TURN_REALM}",
            "fingerprint",
            "no-tls",
            "no-dtls",
            "no-cli",
            f"allowed-peer-ip={ip}",  # the app; coturn may refuse some ranges
            f"userdb={self._directory / 'turndb'}",
            f"pidfile={self._directory / 'turnserver.pid'}",
            f"log-file={self.log_path}",
            "simple-log",
            "no-stdout-log",
        ]
        return "\n".join(lines) + "\n"

    async def __aenter__(self) -> Coturn:
        self.config_path.write_text(self.config())
        argv = ("turnserver", "-c", str(self.config_path))
        if self.topology is None:
            self.process = start_logged(argv, self._output)
        else:
            self.process = self.topology.spawn(self.topology.server, *argv, log_path=self._output)
        try:
            await self._wait_answering()
        except BaseException:
            await asyncio.to_thread(self._stop)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._stop)

    async def _wait_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + ANSWER_WITHIN
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.explain("exited while starting")
            namespace = None if self.topology is None else self.topology.server
            if await stun_binding(namespace, self.address, seconds=0.2):
                return
            await asyncio.sleep(0.05)  # refused at once while it is not listening yet
        raise AssertionError(self.explain(f"no STUN answer within {ANSWER_WITHIN:.0f} s"))

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def explain(self, what: str, tail: int = 12) -> str:
        lines = []
        for path in (self._output, self.log_path):
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-tail:]
        return "\n".join([f"turnserver: {what}", "--- end of its output ---", *lines])

    def credentials(self, user: str = "viewer", ttl: int = 3600) -> tuple[str, str]:
        """A time-limited username and password (the TURN REST API scheme coturn checks
        with use-auth-secret): `<expiry>:<user>` and base64(HMAC-SHA1(secret, name))."""
        username = f"{int(time.time()) + ttl}:{user}"
        digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
        return username, base64.b64encode(digest).decode()

    def urls(self, transports: Sequence[str] = ("udp", "tcp")) -> list[str]:
        return [f"turn:{SERVER_IP}:{TURN_PORT}?transport={t}" for t in transports]

    def ice_server(self, transports: Sequence[str] = ("udp", "tcp")) -> dict[str, Any]:
        """An RTCIceServer for the browser: `chromium.offer({"iceServers": [...]})`."""
        username, credential = self.credentials()
        return {"urls": self.urls(transports), "username": username, "credential": credential}

    def app_settings(self, transports: Sequence[str] = ("udp", "tcp")) -> dict[str, str]:
        """The app's settings that hand this server to viewers."""
        return {
            "STREAMCART_WEBRTC_ICE_SERVERS": ",".join(self.urls(transports)),
            "STREAMCART_TURN_SECRET": self.secret,
        }


async def stun_binding(
    namespace: NetworkNamespace | None,
    server: tuple[str, int] = (SERVER_IP, TURN_PORT),
    *,
    transport: str = "udp",
    seconds: float = 1.0,
) -> tuple[str, int] | None:
    """Where `server` saw a STUN binding request from `namespace` come from (its
    XOR-MAPPED-ADDRESS), or None when no answer comes within `seconds`. Over UDP
    the request is repeated every 100 ms."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        async with asyncio.timeout(seconds):
            with await connected(namespace, server, kind) as sock:
                if transport == "udp":
                    data = await _ask_udp(loop, sock, bytes(request))
                else:
                    await loop.sock_sendall(sock, bytes(request))
                    data = await _read_stun(loop, sock)
    except (TimeoutError, OSError):
        return None
    response = stun.parse_message(data)
    assert response.transaction_id == request.transaction_id, response
    assert response.message_class == stun.Class.RESPONSE, response
    return response.attributes["XOR-MAPPED-ADDRESS"]


async def _ask_udp(loop: asyncio.AbstractEventLoop, sock: socket.socket, request: bytes) -> bytes:
    while True:
        await loop.sock_sendall(sock, request)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.1)


async def _read_stun(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    data = b""
    while len(data) < 20 or len(data) < 20 + int.from_bytes(data[2:4], "big"):
        chunk = await loop.sock_recv(sock, 2048)
        if not chunk:
            raise ConnectionError("closed mid-message")
        data += chunk
    return data


async def turn_allocation(
    namespace: NetworkNamespace,
    username: str,
    password: str,
    server: tuple[str, int] = (SERVER_IP, TURN_PORT),
    *,
    transport: str = "udp",
    seconds: float = 5.0,
) -> tuple[str, int]:
    """Allocate a relay on `server` from `namespace` with aioice's TURN client (over UDP
    or TCP), delete it again and return the relayed address it had. Raises aioice's
    `TransactionFailed` (e.g. 401 for bad credentials), or TimeoutError after `seconds`."""
    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {"username": username, "password": password}
    options |= {"lifetime": 600, "channel_refresh_time": 500}
    async with asyncio.timeout(seconds):
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        sock = await connected(namespace, server, kind)
        try:
            if transport == "udp":
                inner, client = await loop.create_datagram_endpoint(
                    lambda: TurnClientUdpProtocol(server, **options), sock=sock
                )
            else:
                inner, client = await loop.create_connection(
                    lambda: TurnClientTcpProtocol(server, **options), sock=sock
                )
        except BaseException:
            sock.close()
            raise
        try:
            relayed = await client.connect()
            await client.delete()
        finally:
            inner.close()
    return relayed
