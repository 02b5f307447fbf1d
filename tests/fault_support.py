"""Private backends a fault test may stop and start, and what it measures around a fault.

The shared PostgreSQL, Redis and RabbitMQ are never touched: each backend here is a
process of its own on free loopback ports in a temporary directory (PostgreSQL and
RabbitMQ run as their system users, as their Debian packages do). A missing binary
fails the test under `CI=true` and skips it elsewhere, like a missing shared backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg

from storage.bus import Event
from tests.backends import missing
from tests.server_process import HOST, ServerApi, free_port
from tests.test_auth import bearer

START_WITHIN = 60.0  # a RabbitMQ node on a busy machine
STOP_WITHIN = 30.0
HANG_BOUND = 10.0  # no HTTP answer may take longer, during a fault or not
EXCHANGE = "streamcart.events"  # the exchange the app publishes on (storage/bus/rabbitmq.py)


def require_binary(path: str, what: str) -> str:
    """`path` when it is an executable; otherwise fail under CI, skip elsewhere."""
    if shutil.which(path):
        return path
    missing(f"{what} is not installed ({path})")


def wait_port(port: int, up: bool, within: float = START_WITHIN) -> None:
    """Block until something accepts (or nothing accepts) on 127.0.0.1:`port`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                accepting = True
        except OSError:
            accepting = False
        if accepting == up:
            return
        time.sleep(0.1)
    raise AssertionError(f"port {port} still {'closed' if up else 'open'} after {within:.0f} s")


def owned_dir(base: Path, name: str, user: str) -> Path:
    """A new directory under `base` that the system `user` may write to."""
    path = base / name
    path.mkdir(parents=True)
    shutil.chown(path, user, user)
    path.chmod(0o700)
    return path


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv]


class PrivatePostgres:
    """A PostgreSQL cluster of its own, trusting loopback, started and stopped with pg_ctl."""

    def __init__(self, base: Path) -> None:
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)
        bindir = Path(versions[-1]) if versions else Path("/usr/lib/postgresql/none/bin")
        self._initdb = require_binary(str(bindir / "initdb"), "PostgreSQL")
        self._pg_ctl = str(bindir / "pg_ctl")
        self.port = free_port()
        self.dir = owned_dir(base, "postgres", "postgres")
        self.data = self.dir / "data"
        subprocess.run(
            as_user(
                "postgres", [self._initdb, "-D", str(self.data), "--auth=trust", "-U", "postgres"]
            ),
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off"
        self._pg_ctl_run("start", "-o", options, "-l", str(self.dir / "server.log"))

    def stop(self) -> None:
        """A fast shutdown: open sessions are disconnected, as in a restart for an upgrade."""
        self._pg_ctl_run("stop", "-m", "fast")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl_run("stop", "-m", "immediate")

    async def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        connection = await asyncpg.connect(self.url())
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def _pg_ctl_run(self, *args: str) -> None:
        argv = [self._pg_ctl, "-D", str(self.data), "-w", "-t", str(int(START_WITHIN)), *args]
        subprocess.run(as_user("postgres", argv), check=True, capture_output=True)


class PrivateRedis:
    """A redis-server of its own with nothing persisted; stopped with SIGTERM."""

    def __init__(self, base: Path) -> None:
        self._binary = require_binary("redis-server", "Redis")
        self.port = free_port()
        self._log = base / "redis.log"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        argv = [self._binary, "--port", str(self.port), "--bind", HOST]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, up=True)

    def stop(self) -> None:
        if self._process is not None:
            _terminate(self._process)
            self._process = None
        wait_port(self.port, up=False)

    close = stop


class PrivateRabbit:
    """A second RabbitMQ node (its own name, ports, config, database and logs), run as
    the `rabbitmq` user so it shares the Erlang cookie that `rabbitmqctl` uses. No
    plugins, so nothing of it listens where the shared node does."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"

    def __init__(self, base: Path) -> None:
        require_binary(self.SERVER, "RabbitMQ")
        self.port = free_port()
        self.node = f"faulttest{os.getpid()}@localhost"
        self.dir = owned_dir(base, "rabbitmq", "rabbitmq")
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = {HOST}:{self.port}\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the shared node's
        for path in self.dir.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": "/var/lib/rabbitmq",  # where the shared Erlang cookie is
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": HOST,
        }
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/"

    def start(self) -> None:
        """Start the node (its durable queues and messages come back) and wait for AMQP."""
        with (self.dir / "console.log").open("ab") as log:
            self._process = subprocess.Popen(
                as_user("rabbitmq", ["env", *_assignments(self._env), self.SERVER]),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port, up=True)

    def stop(self) -> None:
        """`rabbitmqctl stop`, then wait for the node's process to end."""
        if self._process is None:
            return
        argv = ["env", *_assignments(self._env), self.CTL, "-n", self.node, "stop"]
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            subprocess.run(
                as_user("rabbitmq", argv), check=True, capture_output=True, timeout=STOP_WITHIN
            )
        _terminate(self._process, group=True)
        self._process = None
        wait_port(self.port, up=False)

    close = stop


def _version(bindir: str) -> float:
    with contextlib.suppress(ValueError):
        return float(Path(bindir).parent.name)
    return 0.0


def _assignments(env: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in env.items()]


def _terminate(process: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM (to its process group when `group`), SIGKILL if it outlives STOP_WITHIN."""
    kill = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    with contextlib.suppress(ProcessLookupError):
        kill(signal.SIGTERM)
    try:
        process.wait(STOP_WITHIN)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            kill(signal.SIGKILL)
        process.wait()


# --- load and what it saw ---------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it was sent and answered, and how."""

    sent: float
    done: float
    status: int | None  # None: no HTTP answer (connection refused or reset, timeout)
    detail: str = ""


@dataclass
class CheckoutLoad:
    """Buyers checking out in a loop until stopped, bounded in requests and time.

    `items` are the checkout bodies' line choices, taken in turn; each worker is one
    buyer. Every answer is kept so a test can judge each one and find recovery."""

    api: ServerApi
    tokens: Sequence[str]
    items: Sequence[dict]
    max_requests: int = 2_000
    max_seconds: float = 90.0
    pause: float = 0.1
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def start(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        self._tasks = [
            asyncio.create_task(self._work(token, index, deadline))
            for index, token in enumerate(self.tokens)
        ]

    async def stop(self) -> list[Answer]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.answers

    def first_success_after(self, moment: float) -> float | None:
        """When the first checkout sent at or after `moment` was answered 201."""
        done = [a.done for a in self.answers if a.sent >= moment and a.status == 201]
        return min(done, default=None)

    async def _work(self, token: str, index: int, deadline: float) -> None:
        turn = index
        while (
            not self._stop.is_set()
            and len(self.answers) < self.max_requests
            and time.monotonic() < deadline
        ):
            line = self.items[turn % len(self.items)]
            turn += 1
            self.answers.append(await self._checkout(token, line))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.pause)

    async def _checkout(self, token: str, line: dict) -> Answer:
        sent = time.monotonic()
        body = {"payment_method": "bank_transfer", "items": [line]}
        try:
            response = await self.api.post(
                "/api/orders/checkout",
                json=body,
                headers=bearer(token),
                timeout=aiohttp.ClientTimeout(total=HANG_BOUND),
            )
        except TimeoutError:
            return Answer(sent, time.monotonic(), None, f"no answer within {HANG_BOUND:.0f} s")
        except aiohttp.ClientError as error:
            return Answer(sent, time.monotonic(), None, type(error).__name__)
        return Answer(sent, time.monotonic(), response.status, await _problem_code(response))


async def _problem_code(response: aiohttp.ClientResponse) -> str:
    """`code` of a problem document, with Retry-After when there is one."""
    if response.status < 400:
        return ""
    with contextlib.suppress(ValueError, aiohttp.ContentTypeError):
        code = (await response.json(content_type=None)).get("code", "")
        retry = response.headers.get("Retry-After")
        return f"{code} Retry-After={retry}" if retry else code
    return (await response.text())[:80]


def acceptable(answer: Answer, refused_while_down: bool = False) -> bool:
    """The contract during a fault: 2xx, a 409 sold out, or a documented 503 (a problem
    with Retry-After); never a 500, never a hang. `refused_while_down`: the app itself
    is down, so a refused or reset connection is what a client sees."""
    if answer.status is None:
        return refused_while_down and "within" not in answer.detail
    if answer.status in (201, 409):
        return True
    return answer.status == 503 and "Retry-After=" in answer.detail


def tally(answers: Sequence[Answer]) -> Counter:
    return Counter(f"{a.status} {a.detail}".strip() for a in answers)


# --- the event bus, as an outside consumer sees it ---------------------------------------


class EventAudit:
    """An external consumer of `order.*`: a durable queue of its own bound to the app's
    exchange, as docs/commerce.md's consumers would; it survives a broker restart, and so
    do the persistent messages in it. It records when each event id first arrived."""

    def __init__(self, url: str, queue: str) -> None:
        self._url = url
        self._queue = queue
        self.arrived: dict[str, float] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url, reconnect_interval=0.5)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self._queue, durable=True)
        await queue.bind(exchange, routing_key="order.*")
        await queue.consume(self._on_message)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    def first_after(self, moment: float) -> float | None:
        return min((t for t in self.arrived.values() if t >= moment), default=None)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            self.arrived.setdefault(Event.from_json(message.body).id, time.monotonic())
