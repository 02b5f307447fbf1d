"""Soak: the real server under a steady mixed load for minutes, watched for leaks.

    .venv/bin/python bench/soak.py                  # 3 minutes
    .venv/bin/python bench/soak.py --minutes 30     # the long run
    .venv/bin/python bench/soak.py --minutes 2 --chatters 200 --viewers 20

One `streamcart serve` on a scratch PostgreSQL database, seeded over REST as a client
would (a seller, a shop, products on show in a live session, buyer and chatter accounts
with a cheap password hash). For the duration, at once:

- ffmpeg publishes a generated test pattern over RTMP in real time, as OBS would
  (H.264 without B-frames, keyframe every 2 s, AAC);
- `--viewers` aiortc viewers watch over WHEP, each leaving (DELETE, then closing its
  peer) after `--viewer-life` seconds and replaced at once by a new one; departures
  are staggered so that viewers join and leave in turn;
- `--chatters` signed-in Socket.IO clients in the session's room, `--chat-rate`
  messages a second in all, round-robin, far below the chat rate limit; a message's
  round trip is from `chat:send` to its sender receiving it in the room's broadcast;
- `--checkouts` purchases a second (add to cart, then check the cart out by bank
  transfer) by a pool of buyers; the seller restocks the products before they sell
  out, and unpaid orders expire after `--payment-window` seconds (the sweeper runs).

The load runs in child processes of this script (viewers, `--chat-processes` chat
processes, the shop), spread over the cores; each row shows their CPU and the machine's
beside the achieved rates, to tell when the load generators, not the server, fall
behind (on 2 cores, scale the counts down with the flags). Every `--sample-every`
seconds the server's RSS, open descriptors (/proc/<pid>/fd) and asyncio tasks
(`streamcart_asyncio_tasks` on /metrics) are sampled; every `--report-every` seconds
a row is printed with those and the p99 latencies of checkouts and chat round trips
over that time.

After the warm-up (`--warmup-fraction` of the run, a third), a figure "keeps growing"
when all hold over the samples after it: its least-squares slope is above a floor (per
minute), so is the slope over their later half (a step that levelled off is not growth),
the lesser slope adds up to more than a margin over that time (a short run's noise is no
trend), and its last sample is above the warm-up's maximum by the margin. Any figure
that keeps growing (or a dead server or publisher) prints `SOAK FAILED` and exits 1.
Writes JSON to bench/results/soak.json. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness
import uvloop
from checkout import git_commit
from socketio_fanout import raise_open_file_limit, shares

from live.hub.chat import RATE_LIMIT, RATE_WINDOW

SCRIPT = Path(__file__).resolve()
DEFAULT_JSON = harness.RESULTS / "soak.json"
CHILD = "_load"  # the hidden sub-command a load process runs
PRODUCTS = (("Áo khoác gió", 390_000, 290_000), ("Son môi lì", 249_000, 199_000),
            ("Tai nghe", 590_000, 450_000), ("Bình giữ nhiệt", 180_000, 129_000))  # fmt: skip
STOCK = 1_000  # units on hand above those reserved, after each restock
RESTOCK_BELOW = STOCK // 2  # available units that trigger a restock
RESTOCK_SECONDS = 5.0
SEED_CONCURRENCY = 16
CHAT_SHARE_OF_LIMIT = 0.5  # each chatter sends at most half the rate limit allows
CHAT_LOST_AFTER = 10.0  # seconds without the echo: the message counts as lost
JOIN_TIMEOUT = 30.0  # one viewer's WHEP join, or one chatter's connect and join
LEAVE_TIMEOUT = 10.0
RAMP_S = 10.0  # the first viewers' joins spread over this long, not all at once
READY_TIMEOUT = 180.0  # every load process connected and joined
ANSWER_TIMEOUT = 30.0  # a load process answering a tick or a stop
LIVE_TIMEOUT = 30.0  # from ffmpeg's start to the stream's first video
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
METRICS_TIMEOUT = aiohttp.ClientTimeout(total=30)
BEHIND_RESET = 1.0  # a pacer this late skips ahead instead of bursting
TASKS_METRIC = "streamcart_asyncio_tasks"
MIB = 1 << 20
# figure: (slope floor per minute, margin floor, margin as a share of the warm-up max)
GROWTH_RULES = {"rss_mib": (1.0, 16.0, 0.05), "fds": (1.0, 16.0, 0.05),
                "tasks": (2.0, 32.0, 0.05)}  # fmt: skip


# --- command line -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, refused early when they would make an unbounded run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="duration (3)")
    parser.add_argument("--viewers", type=int, default=50, help="WebRTC viewers (50)")
    parser.add_argument("--viewer-life", type=float, default=60.0, help="s per viewer (60)")
    parser.add_argument("--chatters", type=int, default=500, help="Socket.IO chatters (500)")
    parser.add_argument("--chat-rate", type=float, default=5.0, help="messages/s in all (5)")
    parser.add_argument("--chat-processes", type=int, default=2, help="their processes (2)")
    parser.add_argument("--checkouts", type=float, default=20.0, help="purchases/s (20)")
    parser.add_argument("--buyers", type=int, default=100, help="buyer accounts (100)")
    parser.add_argument("--payment-window", type=int, default=120, help="unpaid order s (120)")
    parser.add_argument("--video-size", default="1280x720", help="published size (1280x720)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="s (10)")
    parser.add_argument("--report-every", type=float, default=60.0, help="s per row (60)")
    parser.add_argument("--warmup-fraction", type=float, default=1 / 3, help="(1/3)")
    parser.add_argument("--label", default="", help="a note stored in the JSON")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    args.seconds = args.minutes * 60
    chat_ceiling = args.chatters * RATE_LIMIT / RATE_WINDOW * CHAT_SHARE_OF_LIMIT
    problems = [
        not 0.5 <= args.minutes <= 240 and "--minutes must be 0.5..240",
        not 0 <= args.viewers <= 200 and "--viewers must be 0..200",
        not 5 <= args.viewer_life <= 3600 and "--viewer-life must be 5..3600",
        not 1 <= args.chatters <= 5_000 and "--chatters must be 1..5000",
        not 0 < args.chat_rate <= chat_ceiling
        and f"--chat-rate must be in (0, {chat_ceiling:g}] for {args.chatters} chatters",
        not 1 <= args.chat_processes <= min(8, args.chatters) and "--chat-processes: 1..8",
        not 0 < args.checkouts <= 500 and "--checkouts must be in (0, 500]",
        not 1 <= args.buyers <= 2_000 and "--buyers must be 1..2000",
        not 30 <= args.payment_window <= 86_400 and "--payment-window must be 30..86400",
        not 1 <= args.sample_every <= 60 and "--sample-every must be 1..60",
        not args.sample_every <= args.report_every <= 600
        and "--report-every must be --sample-every..600",
        not 0.1 <= args.warmup_fraction <= 0.8 and "--warmup-fraction must be 0.1..0.8",
        args.seconds * (1 - args.warmup_fraction) < 3 * args.sample_every
        and "too short: fewer than 3 samples after the warm-up",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- the server and its figures ---------------------------------------------------------


def server_settings(args: argparse.Namespace, database_url: str) -> dict[str, str]:
    """Production defaults but: loopback ports, a cheap password hash (the accounts are
    seeded over REST), tokens that outlive the run, no recording to disk."""
    return {
        "STREAMCART_DATABASE_URL": database_url,
        "STREAMCART_RTMP_HOST": harness.HOST,
        "STREAMCART_RTMP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_UDP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_TCP_PORT": "0",
        "STREAMCART_WEBRTC_PUBLIC_HOSTS": harness.HOST,
        "STREAMCART_WEBRTC_INTERFACE_CANDIDATES": "false",
        "STREAMCART_WEBRTC_MAX_VIEWERS": str(args.viewers + 20),
        "STREAMCART_RECORD_STREAMS": "false",
        "STREAMCART_PASSWORD_TIME_COST": "1",
        "STREAMCART_PASSWORD_MEMORY_KIB": "1024",
        "STREAMCART_ACCESS_TOKEN_TTL": str(int(args.seconds + 3_600)),
        "STREAMCART_PAYMENT_WINDOW": str(args.payment_window),
    }


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def asyncio_tasks(http: aiohttp.ClientSession, url: str) -> int:
    """The server's `streamcart_asyncio_tasks` gauge."""
    try:
        async with http.get(f"{url}/metrics", timeout=METRICS_TIMEOUT) as response:
            text = await response.text()
    except TimeoutError:
        raise RuntimeError(
            f"/metrics did not answer within {METRICS_TIMEOUT.total:g} s: the server is "
            "overloaded (see its log), lower the load (--chatters, --viewers, --checkouts)"
        ) from None
    for line in text.splitlines():
        if line.startswith(TASKS_METRIC + " "):
            return int(float(line.split()[1]))
    raise RuntimeError(f"/metrics has no {TASKS_METRIC}: is this server older than the gauge?")


# --- seeding over REST ------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """What the load processes need: where, which session, who."""

    url: str
    live_session_id: str
    stream_key: str
    seller_token: str
    product_ids: list[str]
    buyer_tokens: list[str]
    chatter_tokens: list[str]


async def seed(url: str, args: argparse.Namespace) -> Scene:
    """A seller, shop and products on show in a scheduled live session (the publisher
    takes it live); buyer and chatter accounts registered and logged in."""
    async with aiohttp.ClientSession(url, timeout=REQUEST_TIMEOUT) as http:
        auth, shop = await harness.seller_with_shop(http)
        live, on_show = await harness.scheduled_show(http, auth, shop, PRODUCTS, STOCK, "Soak")
        tokens = await accounts(http, args.buyers + args.chatters)
    return Scene(
        url=url,
        live_session_id=live["id"],
        stream_key=live["stream"]["stream_key"],
        seller_token=auth["Authorization"].removeprefix("Bearer "),
        product_ids=[item["product_id"] for item in on_show],
        buyer_tokens=tokens[: args.buyers],
        chatter_tokens=tokens[args.buyers :],
    )


async def accounts(http: aiohttp.ClientSession, count: int) -> list[str]:
    """`count` buyers registered and logged in over REST; their access tokens."""
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    password = secrets.token_urlsafe(16)

    async def one(index: int) -> str:
        email = f"soak{index}@example.com"
        account = {"email": email, "password": password, "display_name": f"Khách {index}"}
        async with gate:
            await harness.expect_json(await http.post("/api/auth/register", json=account), 201)
            login = {"email": email, "password": password}
            tokens = await harness.expect_json(await http.post("/api/auth/login", json=login), 200)
        return tokens["access_token"]

    return list(await asyncio.gather(*(one(index) for index in range(count))))


# --- the publisher ----------------------------------------------------------------------


async def start_publisher(
    args: argparse.Namespace, rtmp_port: str, key: str, seconds: float
) -> asyncio.subprocess.Process:
    """ffmpeg encoding a test pattern and a tone in real time to RTMP, as OBS would
    (x264 without B-frames, keyframe every 2 s, AAC), for at most `seconds`."""
    picture = f"testsrc2=size={args.video_size}:rate=30"
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-f", "lavfi", "-i", picture,
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:.0f}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
        "-g", "60", "-pix_fmt", "yuv420p", "-b:v", "2500k", "-maxrate", "2500k",
        "-bufsize", "5000k", "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
        "-f", "flv", f"rtmp://{harness.HOST}:{rtmp_port}/live/{key}",
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def until_live(scene: Scene, publisher: asyncio.subprocess.Process) -> None:
    """Until the session's health report shows the published video."""
    auth = {"Authorization": f"Bearer {scene.seller_token}"}
    path = f"/api/live-sessions/{scene.live_session_id}/health"
    async with aiohttp.ClientSession(scene.url, timeout=REQUEST_TIMEOUT) as http:
        async with asyncio.timeout(LIVE_TIMEOUT):
            while True:
                if publisher.returncode is not None:
                    raise RuntimeError(f"ffmpeg exited with {publisher.returncode}")
                async with http.get(path, headers=auth) as response:
                    if response.status == 200 and (await response.json())["width"]:
                        return
                await asyncio.sleep(0.2)


# --- load processes: the driver's side ---------------------------------------------------


class LoadProcess:
    """One child process of this script: config in a file, JSON commands on stdin,
    JSON lines on stdout, its errors in a log."""

    def __init__(self, process: asyncio.subprocess.Process, name: str, log: Path) -> None:
        self.process = process
        self.name = name
        self.log = log

    @classmethod
    async def start(cls, role: str, config: dict, work: Path, name: str) -> LoadProcess:
        config_path = work / f"{name}.json"
        config_path.write_text(json.dumps(config))
        log_path = work / f"{name}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(SCRIPT), CHILD, role, str(config_path),
                cwd=harness.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                limit=2**24,
            )  # fmt: skip
        return cls(process, name, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def expect(self, phase: str, within: float) -> dict:
        try:
            async with asyncio.timeout(within):
                return await harness.read_phase(self.process, self.name, phase)
        except TimeoutError:
            raise RuntimeError(f"{self.name}: no {phase} within {within:g} s") from None

    async def ask(self, command: str, phase: str) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"do": command}) + "\n").encode())
        await self.process.stdin.drain()
        return await self.expect(phase, ANSWER_TIMEOUT)

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


# --- load processes: their side ----------------------------------------------------------


def report(phase: str, **fields: object) -> None:
    print(json.dumps({"phase": phase, **fields}), flush=True)


class Load:
    """What every load process does: set up, run until stopped, hand over its figures
    since the last tick when asked."""

    async def setup(self) -> dict:
        return {}

    def start(self) -> None:
        raise NotImplementedError

    def tick(self) -> dict:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class Pacer:
    """Calls at a fixed rate without bursting after a stall: late by more than
    BEHIND_RESET seconds, it skips ahead and counts the calls it missed."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.missed = 0
        self._next = time.monotonic()

    async def wait(self) -> None:
        self._next += self.interval
        late = time.monotonic() - self._next
        if late > BEHIND_RESET:
            skipped = int(late / self.interval)
            self.missed += skipped
            self._next += skipped * self.interval
        await asyncio.sleep(max(0.0, self._next - time.monotonic()))


@dataclass
class Latencies:
    """Latencies in ms and outcomes since the last tick."""

    ms: dict[str, list[float]] = field(default_factory=dict)
    outcomes: Counter = field(default_factory=Counter)

    def add(self, name: str, started: float) -> None:
        self.ms.setdefault(name, []).append(round(1000 * (time.perf_counter() - started), 2))

    def take(self) -> dict:
        taken = {"ms": self.ms, "outcomes": dict(self.outcomes)}
        self.ms, self.outcomes = {}, Counter()
        return taken


class Shop(Load):
    """Buyers purchasing at a fixed rate (add to cart, check the cart out), each one
    purchase at a time; the seller restocks what runs low."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.figures = Latencies()
        self.idle: list[str] = [f"Bearer {t}" for t in config["buyer_tokens"]]
        self.tasks: set[asyncio.Task] = set()
        self.http = aiohttp.ClientSession(
            config["url"], timeout=REQUEST_TIMEOUT,
            connector=aiohttp.TCPConnector(limit=len(self.idle) + 2),
        )  # fmt: skip

    def start(self) -> None:
        self.pacer = Pacer(self.config["rate"])
        for loop in (self.purchases(), self.restocks()):
            task = asyncio.create_task(loop)
            self.tasks.add(task)

    async def purchases(self) -> None:
        """One purchase per tick of the pacer while a buyer is free (else it counts as
        skipped); ends when cancelled."""
        while True:
            await self.pacer.wait()
            if not self.idle:
                self.figures.outcomes["skipped (no free buyer)"] += 1
                continue
            task = asyncio.create_task(self.purchase(self.idle.pop()))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def purchase(self, token: str) -> None:
        headers = {"Authorization": token}
        item = {
            "product_id": secrets.choice(self.config["product_ids"]),
            "quantity": 1,
            "live_session_id": self.config["live_session_id"],
        }
        try:
            started = time.perf_counter()
            async with self.http.post("/api/cart/items", json=item, headers=headers) as added:
                cart = await added.json()
            self.figures.add("add_to_cart", started)
            if added.status != 201:
                self.figures.outcomes[f"add {added.status}"] += 1
                return
            checked = time.perf_counter()
            body = {"payment_method": "bank_transfer"}
            async with self.http.post("/api/orders/checkout", json=body, headers=headers) as out:
                answer = await out.read()
            self.figures.add("checkout", checked)
            self.figures.add("purchase", started)
            self.figures.outcomes[f"checkout {out.status}"] += 1
            if out.status != 201:
                await self.empty_cart(headers, cart, answer)
        except (aiohttp.ClientError, TimeoutError) as error:
            self.figures.outcomes[type(error).__name__] += 1
        finally:
            self.idle.append(token)

    async def empty_cart(self, headers: dict, cart: dict, answer: bytes) -> None:
        """A refused checkout leaves the cart full: empty it, so the buyer's next
        purchase is one unit again."""
        print(f"checkout refused: {answer[:300]!r}", file=sys.stderr)
        for line in cart.get("items", []):
            async with self.http.delete(f"/api/cart/items/{line['id']}", headers=headers):
                pass

    async def restocks(self) -> None:
        """Every RESTOCK_SECONDS, each product running low gets STOCK units on hand above
        those reserved by unpaid orders; ends when cancelled."""
        seller = {"Authorization": f"Bearer {self.config['seller_token']}"}
        while True:
            await asyncio.sleep(RESTOCK_SECONDS)
            for product_id in self.config["product_ids"]:
                try:
                    await self.restock(product_id, seller)
                except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
                    self.figures.outcomes[f"restock {type(error).__name__}"] += 1

    async def restock(self, product_id: str, seller: dict) -> None:
        path = f"/api/products/{product_id}"
        product = await harness.expect_json(await self.http.get(path, headers=seller), 200)
        (variant,) = product["variants"]
        if variant["available"] >= RESTOCK_BELOW:
            return
        reserved = variant["stock"] - variant["available"]
        change = {"variants": [{"id": variant["id"], "stock": reserved + STOCK}]}
        await harness.expect_json(await self.http.patch(path, json=change, headers=seller), 200)
        self.figures.outcomes["restocked"] += 1

    def tick(self) -> dict:
        taken = self.figures.take()
        taken["outcomes"]["skipped (pacer behind)"] = self.pacer.missed
        self.pacer.missed = 0
        return taken

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.close()


class Chat(Load):
    """Signed-in Socket.IO clients in the session's room, sending round-robin at a
    fixed rate; a round trip ends when the sender sees its message broadcast. A client
    found disconnected when its turn comes connects and joins again, as an app would."""

    def __init__(self, config: dict) -> None:
        import socketio  # only the chat processes need it

        self.config = config
        self.figures = Latencies()
        self.clients = [socketio.AsyncClient(reconnection=False) for _ in config["tokens"]]
        for index, client in enumerate(self.clients):
            client.on("chat:message", lambda message, i=index: self.on_message(i, message))
        self.emit_errors = (socketio.exceptions.SocketIOError,)
        self.gate = asyncio.Semaphore(20)
        self.pending: dict[str, tuple[float, int]] = {}  # text: (sent at, sender)
        self.received = 0
        self.tasks: dict[int | None, asyncio.Task] = {}  # the sender (None), rejoins

    async def setup(self) -> dict:
        started = time.perf_counter()
        await asyncio.gather(*(self.join(index) for index in range(len(self.clients))))
        return {"clients": len(self.clients), "join_s": round(time.perf_counter() - started, 1)}

    async def join(self, index: int) -> None:
        """Connect client `index` and join the session's room."""
        client = self.clients[index]
        async with self.gate, asyncio.timeout(JOIN_TIMEOUT):
            await client.connect(
                self.config["url"], auth={"token": self.config["tokens"][index]},
                transports=["websocket"], wait_timeout=JOIN_TIMEOUT,
            )  # fmt: skip
            room = {"live_session_id": self.config["live_session_id"]}
            answer = await client.call("session:join", room, timeout=JOIN_TIMEOUT)
        if not answer.get("ok"):
            raise RuntimeError(f"session:join refused: {answer}")

    async def rejoin(self, index: int) -> None:
        try:
            await self.join(index)
            self.figures.outcomes["rejoined"] += 1
        except (*self.emit_errors, TimeoutError, RuntimeError) as error:
            self.figures.outcomes[f"rejoin failed {type(error).__name__}"] += 1
        finally:
            del self.tasks[index]

    def on_message(self, index: int, message: dict) -> None:
        self.received += 1
        sent = self.pending.get(message.get("text", ""))
        if sent is not None and sent[1] == index:
            del self.pending[message["text"]]
            self.figures.ms.setdefault("chat_rtt", []).append(
                round(1000 * (time.perf_counter() - sent[0]), 2)
            )

    def start(self) -> None:
        self.pacer = Pacer(self.config["rate"])
        self.tasks[None] = asyncio.create_task(self.send_all())

    async def send_all(self) -> None:
        """Round-robin over the clients at the pacer's rate; ends when cancelled."""
        prefix = f"soak {os.getpid()}"
        for count in range(10**9):
            await self.pacer.wait()
            index = count % len(self.clients)
            if not self.clients[index].connected:
                self.figures.outcomes["skipped (disconnected)"] += 1
                if index not in self.tasks:
                    self.tasks[index] = asyncio.create_task(self.rejoin(index))
                continue
            text = f"{prefix} #{count}"
            self.pending[text] = (time.perf_counter(), index)
            payload = {"live_session_id": self.config["live_session_id"], "text": text}
            try:
                await self.clients[index].emit(
                    "chat:send", payload, callback=lambda answer, t=text: self.on_answer(t, answer)
                )
                self.figures.outcomes["sent"] += 1
            except self.emit_errors as error:
                del self.pending[text]
                self.figures.outcomes[f"send failed {type(error).__name__}"] += 1

    def on_answer(self, text: str, answer: dict) -> None:
        """A refusal is counted as such, not also as a lost message."""
        if not answer.get("ok"):
            self.pending.pop(text, None)
            self.figures.outcomes[f"refused {answer.get('error', {}).get('code')}"] += 1

    def tick(self) -> dict:
        now = time.perf_counter()
        for text, (sent_at, _) in list(self.pending.items()):
            if now - sent_at > CHAT_LOST_AFTER:
                del self.pending[text]
                self.figures.outcomes["lost"] += 1
        taken = self.figures.take()
        taken["outcomes"]["skipped (pacer behind)"] = self.pacer.missed
        taken["outcomes"]["deliveries"] = self.received
        taken["outcomes"]["connected"] = sum(client.connected for client in self.clients)
        self.pacer.missed = self.received = 0
        return taken

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.disconnect() for c in self.clients), return_exceptions=True)


class Viewers(Load):
    """aiortc viewers over WHEP, each slot joining, watching for its life, leaving
    (DELETE, then closing the peer) and joining again; first departures staggered."""

    def __init__(self, config: dict) -> None:
        import webrtc_peers  # aiortc and the project's peers: only this process

        webrtc_peers.keep_ice_on_loopback()
        webrtc_peers.count_instead_of_decoding()
        self.peers = webrtc_peers
        self.config = config
        self.figures = Latencies()
        self.watching: dict = {}  # viewer: when it began watching, or the last tick
        self.closed_frames = 0
        self.counted_frames = 0
        self.watched_s = 0.0  # viewer-seconds since the last tick
        self.slots: list[asyncio.Task] = []
        self.gate = asyncio.Semaphore(10)
        self.http = aiohttp.ClientSession(config["url"], timeout=REQUEST_TIMEOUT)

    def start(self) -> None:
        count, life = self.config["viewers"], self.config["life_s"]
        self.slots = [
            asyncio.create_task(self.slot(RAMP_S * i / count, life * (i + 1) / count))
            for i in range(count)
        ]

    async def slot(self, delay: float, first_life: float) -> None:
        """After `delay`, join, watch, leave, again; ends when cancelled."""
        await asyncio.sleep(delay)
        life = first_life
        while True:
            viewer = self.peers.Viewer()
            try:
                async with self.gate, asyncio.timeout(JOIN_TIMEOUT):
                    started = time.perf_counter()
                    location = await self.join(viewer)
                    self.figures.add("join", started)
            except (aiohttp.ClientError, TimeoutError, RuntimeError) as error:
                self.figures.outcomes[f"join failed {type(error).__name__}"] += 1
                await self.close_peer(viewer)
                await asyncio.sleep(1.0)
                continue
            self.figures.outcomes["joined"] += 1
            self.watching[viewer] = time.monotonic()
            try:
                await asyncio.sleep(life)
            finally:
                self.watched_s += time.monotonic() - self.watching.pop(viewer)
                await self.leave(viewer, location)
            life = self.config["life_s"]

    async def join(self, viewer) -> str:
        """The WHEP offer and answer, until connected; the resource to DELETE."""
        peer = viewer.peer
        await peer.setLocalDescription(await peer.createOffer())
        headers = {"Content-Type": self.peers.SDP}
        path = f"/api/live-sessions/{self.config['live_session_id']}/whep"
        async with self.http.post(path, data=peer.localDescription.sdp, headers=headers) as r:
            if r.status != 201:
                raise RuntimeError(f"offer answered {r.status}: {await r.text()}")
            answer, location = await r.text(), r.headers["Location"]
        await peer.setRemoteDescription(self.peers.RTCSessionDescription(answer, "answer"))
        while not viewer.connected:
            if peer.connectionState in self.peers.ENDED_STATES:
                raise RuntimeError(f"peer {peer.connectionState} before connecting")
            await asyncio.sleep(0.05)
        return location

    async def leave(self, viewer, location: str) -> None:
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT), self.http.delete(location) as response:
                self.figures.outcomes[f"left {response.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as error:
            self.figures.outcomes[f"leave failed {type(error).__name__}"] += 1
        await self.close_peer(viewer)

    async def close_peer(self, viewer) -> None:
        self.closed_frames += viewer.video_frames
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(viewer.peer.close(), LEAVE_TIMEOUT)

    def tick(self) -> dict:
        frames = self.closed_frames + sum(viewer.video_frames for viewer in self.watching)
        taken = self.figures.take()
        now = time.monotonic()
        for viewer, since in self.watching.items():
            self.watched_s += now - since
            self.watching[viewer] = now
        taken["outcomes"]["frames"] = frames - self.counted_frames
        taken["outcomes"]["watched_s"] = round(self.watched_s, 2)
        taken["outcomes"]["connected"] = sum(viewer.connected for viewer in self.watching)
        self.counted_frames, self.watched_s = frames, 0.0
        return taken

    async def close(self) -> None:
        for task in self.slots:
            task.cancel()
        await asyncio.gather(*self.slots, return_exceptions=True)
        await self.http.close()


ROLES: dict[str, Callable[[dict], Load]] = {"shop": Shop, "chat": Chat, "viewers": Viewers}


async def serve_commands(role: str, config: dict) -> None:
    """Set up, say "ready", then obey the driver's commands on stdin ("go", "tick",
    "stop") until stopped, stdin closes or the run's time limit passes."""
    load = ROLES[role](config)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        async with asyncio.timeout(config["limit_s"]):
            report("ready", **await load.setup())
            while line := await commands.readline():
                command = json.loads(line)["do"]
                if command == "go":
                    load.start()
                    report("going")
                elif command == "tick":
                    report("tick", **load.tick())
                else:
                    break
    finally:
        await load.close()
    report("done")


def run_child(role: str, config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            runner.run(serve_commands(role, config))
        except Exception as error:
            report("error", message=repr(error))
            raise


# --- the run ----------------------------------------------------------------------------


def load_configs(args: argparse.Namespace, scene: Scene) -> list[tuple[str, str, dict]]:
    """(role, name, config) of every load process."""
    limit = READY_TIMEOUT + args.seconds + 120
    base = {"url": scene.url, "live_session_id": scene.live_session_id, "limit_s": limit}
    configs = [("shop", "shop", {**base, "rate": args.checkouts, "buyer_tokens":
                scene.buyer_tokens, "seller_token": scene.seller_token,
                "product_ids": scene.product_ids})]  # fmt: skip
    start = 0
    for index, count in enumerate(shares(args.chatters, args.chat_processes)):
        tokens = scene.chatter_tokens[start : start + count]
        start += count
        rate = args.chat_rate * count / args.chatters
        configs.append(("chat", f"chat-{index}", {**base, "rate": rate, "tokens": tokens}))
    if args.viewers:
        viewers = {**base, "viewers": args.viewers, "life_s": args.viewer_life}
        configs.append(("viewers", "viewers", viewers))
    return configs


@dataclass
class Sample:
    """The server's figures at one moment and the load's since the sample before."""

    t: float
    rss_mib: float
    fds: int
    tasks: int
    cpu: dict[str, float]  # CPU seconds so far: server, each load process, machine
    loads: dict[str, dict]


async def take_sample(
    started: float, server: harness.Server, loads: list[LoadProcess], http
) -> Sample:
    ticks = await asyncio.gather(*(load.ask("tick", "tick") for load in loads))
    cpu = {"server": harness.process_cpu_seconds(server.pid)}
    cpu |= {load.name: harness.process_cpu_seconds(load.pid) for load in loads}
    cpu["machine"] = harness.machine_busy_seconds()
    return Sample(
        t=round(time.monotonic() - started, 2),
        rss_mib=round(rss_mib(server.pid), 1),
        fds=open_fds(server.pid),
        tasks=await asyncio_tasks(http, server.url),
        cpu=cpu,
        loads={load.name: tick for load, tick in zip(loads, ticks, strict=True)},
    )


async def soak(
    args: argparse.Namespace,
    server: harness.Server,
    loads: list[LoadProcess],
    alive: Callable[[], None],
    on_row: Callable[[dict], None],
) -> tuple[Sample, list[Sample]]:
    """Go, then a sample every --sample-every s (a row every --report-every s) until the
    duration is over: the first sample (at the go) and the others."""
    count = int(args.seconds // args.sample_every)
    per_row = max(1, round(args.report_every / args.sample_every))
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        await asyncio.gather(*(load.ask("go", "going") for load in loads))
        first = await take_sample(started, server, loads, http)
        samples: list[Sample] = []
        for index in range(1, count + 1):
            await asyncio.sleep(max(0.0, started + index * args.sample_every - time.monotonic()))
            alive()
            samples.append(await take_sample(started, server, loads, http))
            if index % per_row == 0 or index == count:
                earlier = samples[-per_row - 1] if len(samples) > per_row else first
                on_row(row(earlier, samples[-per_row:]))
    return first, samples


async def run(args: argparse.Namespace, work: Path, on_row: Callable[[dict], None]) -> dict:
    """Database, server, seed, publisher, load processes; the soak; everything stopped
    however it ends."""
    async with harness.scratch_database("streamcart_soak") as database_url:
        settings = server_settings(args, database_url)
        server = harness.start_server(settings, work, 0, harness.serve_command())
        publisher: asyncio.subprocess.Process | None = None
        loads: list[LoadProcess] = []
        try:
            await harness.wait_healthy([server])
            print(f"server pid {server.pid} on {server.url}", flush=True)
            setup_started = time.perf_counter()
            scene = await seed(server.url, args)
            print(f"seeded over REST in {time.perf_counter() - setup_started:.1f} s", flush=True)
            publisher = await start_publisher(
                args, settings["STREAMCART_RTMP_PORT"], scene.stream_key,
                READY_TIMEOUT + LIVE_TIMEOUT + args.seconds + 60,
            )  # fmt: skip
            await until_live(scene, publisher)
            for role, name, config in load_configs(args, scene):
                loads.append(await LoadProcess.start(role, config, work, name))
            ready = await asyncio.gather(*(load.expect("ready", READY_TIMEOUT) for load in loads))
            setup_s = round(time.perf_counter() - setup_started, 1)
            print(f"set up in {setup_s} s: {json.dumps(ready)}", flush=True)

            def alive() -> None:
                harness.check_alive([server])
                if publisher is not None and publisher.returncode is not None:
                    raise RuntimeError(f"the publisher (ffmpeg) exited: {publisher.returncode}")

            first, samples = await soak(args, server, loads, alive, on_row)
            await asyncio.gather(*(load.ask("stop", "done") for load in loads))
        except (RuntimeError, TimeoutError):
            keep_logs(work, server, args.json.parent / "soak-logs")
            raise
        finally:
            for load in loads:
                await load.close()
            await harness.stop_show(publisher, server)
    return {"setup_s": setup_s, "first": first, "samples": samples}


def keep_logs(work: Path, server: harness.Server, keep: Path) -> None:
    """After a failure: the end of the server's log, and every log of the run copied
    to `keep` (the scratch directory goes with the run)."""
    print(f"--- server log:\n{server.log_tail()}", file=sys.stderr)
    keep.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        shutil.copyfile(log, keep / log.name)
    print(f"--- the run's logs: {keep}", file=sys.stderr)


# --- the figures ------------------------------------------------------------------------


def merged(samples: list[Sample], role_prefix: str, name: str) -> list[float]:
    return sorted(
        value
        for sample in samples
        for load, tick in sample.loads.items()
        if load.startswith(role_prefix)
        for value in tick["ms"].get(name, [])
    )


def outcomes(samples: list[Sample], role_prefix: str) -> Counter:
    total: Counter = Counter()
    for sample in samples:
        for load, tick in sample.loads.items():
            if load.startswith(role_prefix):
                total.update(tick["outcomes"])
    return total


def is_error(outcome: str) -> bool:
    """A shop outcome that is neither a placed order, a restock nor a skipped tick."""
    return outcome not in ("checkout 201", "restocked") and not outcome.startswith("skipped")


def row(earlier: Sample, samples: list[Sample]) -> dict:
    """One printed row: the last sample's server figures, the load's over the samples
    since `earlier`, CPU in % of one core over the same time."""
    last = samples[-1]
    seconds = max(last.t - earlier.t, 1e-9)

    def pct(name: str) -> float:
        return round(100 * (last.cpu[name] - earlier.cpu[name]) / seconds, 1)

    shop, chat, viewers = outcomes(samples, "shop"), outcomes(samples, "chat"), None
    if any("viewers" in s.loads for s in samples):
        viewers = outcomes(samples, "viewers")
    checkout_ms, chat_ms = merged(samples, "shop", "checkout"), merged(samples, "chat", "chat_rtt")
    loads = [name for name in last.cpu if name not in ("server", "machine")]
    connected = last.loads.get("viewers", {}).get("outcomes", {}).get("connected", 0)
    return {
        "t_s": last.t,
        "rss_mib": last.rss_mib,
        "fds": last.fds,
        "tasks": last.tasks,
        "checkouts_per_s": round(shop["checkout 201"] / seconds, 1),
        "checkout_errors": sum(shop[k] for k in shop if is_error(k)),
        "checkout_p99_ms": harness.percentile(checkout_ms, 99),
        "purchase_p99_ms": harness.percentile(merged(samples, "shop", "purchase"), 99),
        "chat_sent_per_s": round(chat["sent"] / seconds, 1),
        "chat_connected": sum(
            tick["outcomes"].get("connected", 0)
            for name, tick in last.loads.items()
            if name.startswith("chat")
        ),
        "chat_refused": sum(v for k, v in chat.items() if k.startswith("refused")),
        "chat_lost": chat["lost"],
        "chat_rtt_p99_ms": harness.percentile(chat_ms, 99),
        "chat_deliveries_per_s": round(chat["deliveries"] / seconds),
        "viewers_connected": connected,
        "viewer_joins": viewers["joined"] if viewers else 0,
        "viewer_join_failures": sum(
            v for k, v in (viewers or {}).items() if k.startswith("join failed")
        ),
        "video_fps_per_viewer": round(viewers["frames"] / viewers["watched_s"], 1)
        if viewers and viewers["watched_s"]
        else 0.0,
        "server_cpu_pct": pct("server"),
        "load_cpu_pct": round(sum(pct(name) for name in loads), 1),
        "busiest_load_cpu_pct": max(pct(name) for name in loads),
        "machine_cpu_pct": pct("machine"),
        "skipped": {k: v for k, v in (shop + chat).items() if k.startswith("skipped") and v},
    }


COLUMNS = (
    ("min", lambda r: f"{r['t_s'] / 60:.1f}"),
    ("RSS MiB", lambda r: f"{r['rss_mib']:.1f}"),
    ("fds", lambda r: str(r["fds"])),
    ("tasks", lambda r: str(r["tasks"])),
    ("checkouts/s", lambda r: f"{r['checkouts_per_s']:.1f}"),
    ("checkout p99 ms", lambda r: f"{r['checkout_p99_ms']:.0f}"),
    ("errors", lambda r: str(r["checkout_errors"])),
    ("sockets", lambda r: str(r["chat_connected"])),
    ("chat/s", lambda r: f"{r['chat_sent_per_s']:.1f}"),
    ("chat RTT p99 ms", lambda r: f"{r['chat_rtt_p99_ms']:.0f}"),
    ("refused/lost", lambda r: f"{r['chat_refused']}/{r['chat_lost']}"),
    ("viewers", lambda r: str(r["viewers_connected"])),
    ("joins", lambda r: f"{r['viewer_joins']}/{r['viewer_join_failures']}"),
    ("fps/viewer", lambda r: f"{r['video_fps_per_viewer']:.1f}"),
    ("server CPU %", lambda r: f"{r['server_cpu_pct']:.0f}"),
    ("load CPU % (busiest)", lambda r: f"{r['load_cpu_pct']:.0f} "
                                       f"({r['busiest_load_cpu_pct']:.0f})"),
    ("machine %", lambda r: f"{r['machine_cpu_pct']:.0f}"),
)  # fmt: skip


def print_row(rows: list[dict], row_: dict) -> None:
    """Print a row as it comes, in columns as wide as their headers (the header once)."""
    if not rows:
        print(" | ".join(name for name, _ in COLUMNS), flush=True)
    rows.append(row_)
    cells = [value(row_).rjust(len(name)) for name, value in COLUMNS]
    print(" | ".join(cells), flush=True)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (y - mean_y) for t, y in points) / spread


def growth(samples: list[Sample], warmup_s: float) -> dict[str, dict]:
    """Per figure: does it keep growing after the warm-up? All of: a least-squares
    slope above its floor per minute over the samples after the warm-up and over their
    later half (a step that levelled off is not growth: Python keeps the memory of a
    burst); the lesser slope, over that window, adding up to more than the margin (a
    floor, or a share of the warm-up's maximum, whichever is larger), so that a short
    run's noise is not a trend; and a last sample above the warm-up's maximum by the
    margin."""
    warm = [s for s in samples if s.t <= warmup_s]
    after = [s for s in samples if s.t > warmup_s]
    later = after[len(after) // 2 :] if len(after) >= 6 else after
    window_min = (after[-1].t - warm[-1].t) / 60
    verdicts = {}
    for name, (slope_floor, margin_floor, margin_share) in GROWTH_RULES.items():
        warm_max = max(getattr(s, name) for s in warm)
        last = getattr(after[-1], name)
        slope = slope_per_minute([(s.t, getattr(s, name)) for s in after])
        late_slope = slope_per_minute([(s.t, getattr(s, name)) for s in later])
        margin = max(margin_floor, margin_share * warm_max)
        verdicts[name] = {
            "warmup_max": warm_max,
            "last": last,
            "min_after": min(getattr(s, name) for s in after),
            "slope_per_min": round(slope, 2),
            "later_half_slope_per_min": round(late_slope, 2),
            "slope_floor_per_min": slope_floor,
            "margin": round(margin, 1),
            "keeps_growing": min(slope, late_slope) > max(slope_floor, margin / window_min)
            and last > warm_max + margin,
        }
    return verdicts


def summary_rows(verdicts: dict[str, dict], totals: dict) -> list[tuple[str, str]]:
    rows = [
        (
            name,
            f"warm-up max {v['warmup_max']:g}, last {v['last']:g}, slope {v['slope_per_min']:+g}"
            f"/min, later half {v['later_half_slope_per_min']:+g}/min (floor "
            f"{v['slope_floor_per_min']:g}, margin {v['margin']:g}): "
            + ("KEEPS GROWING" if v["keeps_growing"] else "level"),
        )
        for name, v in verdicts.items()
    ]
    rows += [(name, str(value)) for name, value in totals.items()]
    return rows


def totals_after_warmup(samples: list[Sample], warmup_s: float, rows: list[dict]) -> dict:
    """Achieved rates and whole-run p99s over the samples after the warm-up."""
    after = [s for s in samples if s.t > warmup_s]
    seconds = after[-1].t - max(s.t for s in samples if s.t <= warmup_s)
    shop, chat = outcomes(after, "shop"), outcomes(after, "chat")
    return {
        "checkouts/s achieved": round(shop["checkout 201"] / seconds, 1),
        "checkout p99 ms": harness.percentile(merged(after, "shop", "checkout"), 99),
        "add to cart + checkout p99 ms": harness.percentile(merged(after, "shop", "purchase"), 99),
        "shop outcomes": dict(sorted(shop.items())),
        "chat messages/s achieved": round(chat["sent"] / seconds, 1),
        "chat RTT p99 ms": harness.percentile(merged(after, "chat", "chat_rtt"), 99),
        "chat outcomes": {k: v for k, v in sorted(chat.items()) if k != "connected"},
        "viewer outcomes": {
            k: v
            for k, v in sorted(outcomes(after, "viewers").items())
            if k not in ("frames", "watched_s", "connected")
        },
        "viewer join p99 ms": harness.percentile(merged(after, "viewers", "join"), 99),
        "busiest load process CPU % (max row)": max(r["busiest_load_cpu_pct"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    raise_open_file_limit(args.chatters + 4 * args.viewers)
    rows: list[dict] = []
    print(
        f"soak: {args.minutes:g} min, {args.viewers} viewers ({args.viewer_life:g} s each), "
        f"{args.chatters} chatters at {args.chat_rate:g} msg/s, {args.checkouts:g} checkouts/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="streamcart-soak-") as tmp:
        try:
            result = asyncio.run(run(args, Path(tmp), lambda r: print_row(rows, r)))
            failure = None
        except KeyboardInterrupt:
            print("interrupted: server, publisher and load processes stopped", file=sys.stderr)
            return 130
        except (RuntimeError, TimeoutError) as error:
            result, failure = None, repr(error)
    if result is None:
        print(f"SOAK FAILED: {failure}")
        return 1
    samples = [result["first"], *result["samples"]]
    warmup_s = args.seconds * args.warmup_fraction
    verdicts = growth(samples, warmup_s)
    totals = totals_after_warmup(samples, warmup_s, rows)
    title = f"After the warm-up ({warmup_s:.0f} s)"
    print(harness.render_table(title, summary_rows(verdicts, totals)))
    growing = [name for name, v in verdicts.items() if v["keeps_growing"]]
    summary = {
        "benchmark": "soak",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {k: v for k, v in vars(args).items() if k != "json"} | {"json": str(args.json)},
        "setup_s": result["setup_s"],
        "rows": rows,
        "samples": [vars(s) for s in samples],
        "growth": verdicts,
        "after_warmup": totals,
        "passed": not growing,
    }
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    if growing:
        print(f"SOAK FAILED: keeps growing after the warm-up: {', '.join(growing)}")
        return 1
    print("soak passed: RSS, descriptors and tasks level after the warm-up")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        run_child(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(main())
