"""Headless Chromium as a WHEP viewer, kept on loopback by a network namespace of its own.

Chromium never offers loopback ICE candidates to an ordinary page, and when a page may
see local addresses it offers every interface's (the machine's real ones included).
So the browser runs in a network namespace the test creates, whose only interface is
its loopback: there is nothing else it could gather or send to. The app stays in the
test process; two bridges reach it from inside the namespace, both on loopback only:

- HTTP: a TCP proxy listening on the app's own port inside the namespace (so the page's
  origin is the app's URL) and forwarding to the app on the host's loopback;
- ICE: the app's aiortc peers bind their UDP sockets inside the namespace, so both ends
  of every connectivity check and every media packet are on the namespace's loopback.

tests/netns_support.py builds on these pieces for a viewer behind NAT on another "host".
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from playwright.async_api import Browser, Page, async_playwright
from yarl import URL

from tests.backends import IN_CI
from tests.tcp_proxy import TcpProxy
from tests.webrtc_support import keep_ice_on_loopback

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",  # loopback is the namespace's only network
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # real addresses, no mDNS lookups
]
# Chromium lists network interfaces only to pages that may capture media; otherwise it
# offers the address of the default route, which the namespace does not have.
INTERFACE_PERMISSIONS = ["camera", "microphone"]
HOST = "127.0.0.1"
CLONE_NEWNET = 0x40000000
WAIT = 15.0
CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) ", re.MULTILINE)

# In a page: wait until `pc` has gathered its ICE candidates, or `gatherMs` has passed.
GATHERED_JS = """
  await new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, gatherMs);
    done();
  });
"""

OFFER_JS = (
    """
async ({ gatherMs, config }) => {
  const pc = config ? new RTCPeerConnection(config) : new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  const video = Object.assign(document.createElement("video"),
    { muted: true, autoplay: true, playsInline: true, srcObject: stream });
  document.body.append(video);
  pc.ontrack = ({ track }) => stream.addTrack(track);
  window.viewer = { pc, video };
  await pc.setLocalDescription(await pc.createOffer());"""
    + GATHERED_JS
    + """  return pc.localDescription.sdp;
}
"""
)

WATCH_JS = """
async (whepPath) => {
  const { pc } = window.viewer;
  const response = await fetch(whepPath, {
    method: "POST", headers: { "Content-Type": "application/sdp" },
    body: pc.localDescription.sdp,
  });
  const body = await response.text();
  if (response.status !== 201) return { status: response.status, body };
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  window.viewer.location = response.headers.get("Location");
  setInterval(async () => {
    const report = { state: pc.connectionState, framesDecoded: 0, frameWidth: 0,
      frameHeight: 0, audioPackets: 0, audioSamples: 0, audioConcealed: 0 };
    (await pc.getStats()).forEach((stat) => {
      if (stat.type !== "inbound-rtp") return;
      if (stat.kind === "video") Object.assign(report, { framesDecoded: stat.framesDecoded ?? 0,
        frameWidth: stat.frameWidth ?? 0, frameHeight: stat.frameHeight ?? 0 });
      if (stat.kind === "audio") Object.assign(report, { audioPackets: stat.packetsReceived ?? 0,
        audioSamples: stat.totalSamplesReceived ?? 0,
        audioConcealed: stat.concealedSamples ?? 0 });
    });
    await window.reportViewerStats(report);
  }, 100);
  return { status: response.status, body };
}
"""

LEAVE_JS = """
async () => (await fetch(window.viewer.location, { method: "DELETE" })).status
"""


def require_network_namespaces() -> None:
    """Creating a namespace needs root and iproute2; fail under CI, skip elsewhere."""
    missing = [what for what in ("ip", CHROMIUM) if shutil.which(what) is None]
    if os.geteuid() != 0:
        missing.append("root (to create a network namespace)")
    if missing:
        message = f"the Chromium viewer test needs {', '.join(missing)}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def candidate_addresses(sdp: str) -> list[str]:
    """The connection address of every ICE candidate in an SDP."""
    return CANDIDATE.findall(sdp)


def assert_loopback_only(sdp: str) -> None:
    """At least one candidate, and each of them a loopback address (never an mDNS name
    or an interface of the machine)."""
    addresses = candidate_addresses(sdp)
    assert addresses, f"no ICE candidates in:\n{sdp}"
    for address in addresses:
        assert _is_loopback(address), f"{address} is not loopback, in:\n{sdp}"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _enter_namespace(path: str) -> None:
    """Move the calling thread (only) into the network namespace at `path`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), path)
    finally:
        os.close(fd)


def _new_bound_socket(family: int, kind: int, address: tuple[str, int] | None) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        if address is not None:
            sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class NetworkNamespace:
    """A network namespace of the test's own, at first with only its loopback (up).

    A socket belongs to the namespace of the thread that created it, whichever thread
    uses it later; one worker thread lives inside the namespace and creates sockets
    there for the test process's event loop.
    """

    def __init__(self, role: str = "viewer") -> None:
        self.name = f"streamcart-{role}-{os.getpid()}-{secrets.token_hex(3)}"
        self._inside: ThreadPoolExecutor | None = None

    @classmethod
    @contextlib.contextmanager
    def created(cls, role: str = "viewer") -> Iterator[NetworkNamespace]:
        """Add the namespace with its loopback up; always delete it on the way out."""
        namespace = cls(role)
        subprocess.run(["ip", "netns", "add", namespace.name], check=True, timeout=10)
        try:
            subprocess.run(
                ["ip", "-n", namespace.name, "link", "set", "lo", "up"], check=True, timeout=10
            )
            namespace._inside = ThreadPoolExecutor(
                1, initializer=_enter_namespace, initargs=(f"/run/netns/{namespace.name}",)
            )
            yield namespace
        finally:
            if namespace._inside is not None:
                namespace._inside.shutdown()
            subprocess.run(["ip", "netns", "delete", namespace.name], check=True, timeout=10)

    def bound_socket(self, kind: int, address: tuple[str, int]) -> socket.socket:
        """A socket bound to `address` inside the namespace."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        return self._create(family, kind, address)

    def socket(self, kind: int = socket.SOCK_STREAM, family: int = socket.AF_INET) -> socket.socket:
        """An unbound socket of the namespace (to connect from it)."""
        return self._create(family, kind, None)

    def _create(self, family: int, kind: int, address: tuple[str, int] | None) -> socket.socket:
        assert self._inside is not None, "the namespace is not open"
        return self._inside.submit(_new_bound_socket, family, kind, address).result(WAIT)

    def command(self, *argv: str) -> list[str]:
        """`argv` as a command line that runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def launcher(self, directory: Path) -> Path:
        """An executable that starts Chromium inside the namespace, for Playwright."""
        script = directory / f"chromium-in-{self.name}"
        script.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {CHROMIUM} "$@"\n')
        script.chmod(0o755)
        return script

    def bind_ice_inside(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """aioice binds each host candidate with the loop's `create_datagram_endpoint(
        local_addr=...)`; binding those sockets in here instead puts the app's end of ICE
        on the namespace's loopback, beside Chromium. Other endpoints are left alone."""
        loop = asyncio.get_running_loop()
        create = loop.create_datagram_endpoint

        async def bound_inside(
            protocol_factory: Any, local_addr: tuple[str, int] | None = None, **kwargs: Any
        ) -> Any:
            if local_addr is None:
                return await create(protocol_factory, **kwargs)
            sock = self.bound_socket(socket.SOCK_DGRAM, local_addr)
            return await create(protocol_factory, sock=sock, **kwargs)

        monkeypatch.setattr(loop, "create_datagram_endpoint", bound_inside)


ViewerNamespace = NetworkNamespace  # the name it had when only the viewer had one


class NamespaceProxy(TcpProxy):
    """Listens on `port` inside the namespace; forwards to the same port on the host."""

    def __init__(self, namespace: NetworkNamespace, port: int) -> None:
        super().__init__(HOST, port)
        self._namespace = namespace
        self._port = port

    async def start(self) -> int:
        listening = self._namespace.bound_socket(socket.SOCK_STREAM, (HOST, self._port))
        listening.listen()
        self._server = await asyncio.start_server(self._accept, sock=listening)
        return self._port


class WhepReply(NamedTuple):
    status: int
    body: str


@dataclass
class ViewerStats:
    """What Chromium's `getStats()` said last (inbound-rtp, video and audio)."""

    state: str = "new"
    frames_decoded: int = 0
    frame_size: tuple[int, int] = (0, 0)
    audio_packets: int = 0
    audio_samples: int = 0
    audio_concealed: int = 0


class ChromiumViewer:
    """One page of the app's origin that watches a live session over WHEP."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.stats = ViewerStats()
        self.decoding = asyncio.Event()

    @classmethod
    async def opened(cls, page: Page, url: URL) -> ChromiumViewer:
        """The viewer on `url` (fetch from there is same-origin), reporting to Python."""
        viewer = cls(page)
        await page.expose_function("reportViewerStats", viewer._report)
        await page.goto(str(url))
        return viewer

    async def offer(self, config: dict[str, Any] | None = None) -> str:
        """Build the peer (recvonly video and audio) and return its complete offer;
        `config` is the RTCConfiguration (`iceServers`, `iceTransportPolicy`, ...)."""
        return await self._run(OFFER_JS, {"gatherMs": WAIT * 1000 / 2, "config": config})

    async def watch(self, whep_path: str) -> WhepReply:
        """POST the offer; on 201 apply the answer and start reporting stats."""
        reply = await self._run(WATCH_JS, whep_path)
        return WhepReply(reply["status"], reply["body"])

    async def leave(self) -> int:
        """DELETE the WHEP resource; the HTTP status."""
        return await self._run(LEAVE_JS)

    async def _run(self, script: str, argument: object = None) -> Any:
        return await asyncio.wait_for(self.page.evaluate(script, argument), WAIT)

    def _report(self, report: dict[str, Any]) -> None:
        self.stats = ViewerStats(
            state=report["state"],
            frames_decoded=report["framesDecoded"],
            frame_size=(report["frameWidth"], report["frameHeight"]),
            audio_packets=report["audioPackets"],
            audio_samples=report["audioSamples"],
            audio_concealed=report["audioConcealed"],
        )
        if self.stats.frames_decoded:
            self.decoding.set()


@contextlib.asynccontextmanager
async def chromium_in(
    namespace: NetworkNamespace,
    origin: URL,
    scratch: Path,
    args: Sequence[str] = tuple(CHROMIUM_ARGS),
    permissions: Sequence[str] = tuple(INTERFACE_PERMISSIONS),
) -> AsyncIterator[ChromiumViewer]:
    """Headless Chromium started inside `namespace`, on the page `origin`/healthz (so a
    WHEP fetch is same-origin), with `permissions` (by default those that let it list
    its interfaces; only a secure origin such as loopback can have them); closed on
    the way out."""
    origin = origin.origin()
    async with chromium_browser(namespace, scratch, args) as browser:
        context = await browser.new_context()
        if permissions:
            await context.grant_permissions(list(permissions), origin=str(origin))
        page = await context.new_page()
        yield await ChromiumViewer.opened(page, origin.with_path("/healthz"))


@contextlib.asynccontextmanager
async def chromium_browser(
    namespace: NetworkNamespace, scratch: Path, args: Sequence[str] = tuple(CHROMIUM_ARGS)
) -> AsyncIterator[Browser]:
    """Headless Chromium started inside `namespace`; closed on the way out."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=namespace.launcher(scratch), args=list(args)
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def chromium_viewer(
    app_url: URL, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ChromiumViewer]:
    """Headless Chromium in a fresh namespace, on a page of the app's origin, with the
    app's ICE bound beside it."""
    async with (
        app_namespace(app_url, monkeypatch) as namespace,
        chromium_in(namespace, app_url, scratch) as viewer,
    ):
        yield viewer


@contextlib.asynccontextmanager
async def app_namespace(
    app_url: URL, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[NetworkNamespace]:
    """A fresh namespace where the app's origin answers (through a proxy) and the app's
    ICE binds, for browsers started inside it."""
    require_network_namespaces()
    keep_ice_on_loopback(monkeypatch)
    origin = app_url.origin()
    with NetworkNamespace.created() as namespace:
        namespace.bind_ice_inside(monkeypatch)
        proxy = NamespaceProxy(namespace, origin.port or 80)
        await proxy.start()
        try:
            yield namespace
        finally:
            await proxy.close()
