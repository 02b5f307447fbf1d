"""What every benchmark needs: a throw-away PostgreSQL database, `streamcart serve`
processes on 127.0.0.1, CPU accounting from /proc, percentiles, a table and a JSON file.

Benchmarks are scripts (`.venv/bin/python bench/<name>.py`), not tests: they import
this module as `harness` because the script's own directory is first on `sys.path`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN_URL = os.environ.get(
    "STREAMCART_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def require_loopback(url: str) -> None:
    """Benchmarks only ever talk to this machine: refuse any other host."""
    host = make_url(url).host or HOST
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"refusing to benchmark against {host}: only 127.0.0.1 is allowed")


# --- a throw-away database ------------------------------------------------------------


async def _admin_execute(admin_url: str, sql: str) -> None:
    """Run one statement on the admin database (CREATE/DROP DATABASE need no transaction)."""
    url = make_url(admin_url)
    conn = await asyncpg.connect(
        host=url.host or HOST,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(prefix: str, admin_url: str = ADMIN_URL) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one run; dropped however the run ends."""
    require_loopback(admin_url)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    await _admin_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- server processes -------------------------------------------------------------------


@dataclass
class Server:
    """One `streamcart serve` process started by a benchmark."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's output, to explain a failure."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def expect_json(response: aiohttp.ClientResponse, status: int) -> dict:
    """The JSON body of a response that must have `status`; the body in the error."""
    if response.status != status:
        raise RuntimeError(
            f"{response.method} {response.url}: {response.status} {await response.text()}"
        )
    return await response.json()


async def seller_with_shop(http: aiohttp.ClientSession) -> tuple[dict[str, str], dict]:
    """Over REST, as a client would: a seller account signed in and its shop; the
    seller's Authorization header and the shop."""
    email, password = "seller@example.com", secrets.token_urlsafe(16)
    account = {"email": email, "password": password, "display_name": "Bench", "role": "seller"}
    await expect_json(await http.post("/api/auth/register", json=account), 201)
    login = {"email": email, "password": password}
    token = (await expect_json(await http.post("/api/auth/login", json=login), 200))["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    shop = await expect_json(
        await http.post("/api/shops", json={"name": "Bench"}, headers=auth), 201
    )
    return auth, shop


async def scheduled_show(
    http: aiohttp.ClientSession,
    auth: dict[str, str],
    shop: dict,
    products: Iterable[tuple[str, int, int]],
    stock: int,
    title: str,
) -> tuple[dict, list[dict]]:
    """Products (name, price, live price) with `stock` each, on show in a live session
    scheduled a minute ahead: (the session, its product lines)."""
    on_show = []
    for name, price, live_price in products:
        body = {"shop_id": shop["id"], "name": name, "base_price": price, "stock": stock}
        body["images"] = [f"https://img.example/{len(on_show)}.jpg"]
        product = await expect_json(await http.post("/api/products", json=body, headers=auth), 201)
        on_show.append({"product_id": product["id"], "live_price": live_price})
    session = {
        "shop_id": shop["id"],
        "title": title,
        "scheduled_at": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        "products": on_show,
    }
    live = await expect_json(await http.post("/api/live-sessions", json=session, headers=auth), 201)
    return live, on_show


GENERATOR = "_generator"  # the hidden sub-command a load generator process runs


async def start_generator(
    script: Path, setup: dict, setup_path: Path, line_limit: int
) -> asyncio.subprocess.Process:
    """`script _generator SETUP` as a child: its setup written as JSON to `setup_path`,
    commands to its stdin and JSON lines from its stdout, each at most `line_limit`."""
    await asyncio.to_thread(setup_path.write_text, json.dumps(setup))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        GENERATOR,
        str(setup_path),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        limit=line_limit,
    )


async def read_phase(process: asyncio.subprocess.Process, name: str, phase: str) -> dict:
    """The next JSON line a load process reports on stdout, insisting it is `phase`."""
    assert process.stdout is not None
    line = await process.stdout.readline()
    if not line:
        raise RuntimeError(f"{name} ended ({await process.wait()}) before {phase}")
    message = json.loads(line)
    if message["phase"] == "error":
        raise RuntimeError(f"{name} failed: {message['message']}")
    if message["phase"] != phase:
        raise RuntimeError(f"{name}: expected {phase}, got {message['phase']}")
    return message


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_env(settings: dict[str, str], port: int, data_dir: Path) -> dict[str, str]:
    """The environment of one server: ours, plus quiet logs, loopback only, the given port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCART_")}
    env.update(
        {
            "STREAMCART_HTTP_HOST": HOST,
            "STREAMCART_HTTP_PORT": str(port),
            "STREAMCART_DATA_DIR": str(data_dir),
            "STREAMCART_LOG_LEVEL": "WARNING",
            "STREAMCART_LOG_FORMAT": "text",
            "STREAMCART_SHUTDOWN_TIMEOUT": "2",
            **settings,
        }
    )
    return env


def serve_command(profile: Path | None = None, sample: Path | None = None) -> list[str]:
    """`python -m live.cli serve`, under cProfile or the stack sampler when asked."""
    if profile is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "live.cli", "serve"]
    if sample is not None:
        # -P: the script's folder (bench/, where rtmp_ingest.py would shadow the package)
        # stays off sys.path.
        return [sys.executable, "-P", str(ROOT / "bench" / "stack_sampler.py"), str(sample)]
    return [sys.executable, "-m", "live.cli", "serve"]


def start_server(
    settings: dict[str, str], work_dir: Path, index: int, command: list[str]
) -> Server:
    """Start one server process on a free port, its output going to a log file."""
    port = free_port()
    data_dir = work_dir / f"server-{index}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / f"server-{index}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server_env(settings, port, data_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(process, port, log_path)


async def start_sampled_servers(
    servers: list[Server],
    settings: dict[str, str],
    work_dir: Path,
    count: int,
    sample: Path | None,
) -> None:
    """Start `count` servers into `servers` (so the caller's cleanup stops those that
    started even if one fails), the first one sampled when asked, and wait until all
    answer."""
    for index in range(count):
        command = serve_command(sample=None if index else sample)
        servers.append(start_server(settings, work_dir, index, command))
    await wait_healthy(servers)


async def wait_healthy(servers: Sequence[Server]) -> None:
    """Wait until every server answers /healthz; fail when one exits or is too slow."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for server in servers:
            try:
                async with asyncio.timeout(STARTUP_TIMEOUT):
                    await _until_healthy(session, server)
            except TimeoutError:
                raise RuntimeError(
                    f"server on port {server.port} not healthy after {STARTUP_TIMEOUT:.0f} s:"
                    f"\n{server.log_tail()}"
                ) from None


async def _until_healthy(session: aiohttp.ClientSession, server: Server) -> None:
    """Poll /healthz every 0.1 s until it answers 200 (the caller bounds the time)."""
    while True:
        check_alive([server])
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{server.url}/healthz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)


def check_alive(servers: Iterable[Server]) -> None:
    """Fail, with the end of its log, when a server died during the run."""
    for server in servers:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server on port {server.port} died with {server.process.returncode}:"
                f"\n{server.log_tail()}"
            )


async def stop_show(publisher: asyncio.subprocess.Process | None, server: Server) -> None:
    """The end of a bench with a live stream: its publisher killed, then its server."""
    if publisher is not None and publisher.returncode is None:
        publisher.kill()
        await publisher.wait()
    stop_servers([server])


def stop_servers(servers: Iterable[Server], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every server (a graceful stop also lets cProfile write its file), then
    SIGKILL whichever is still running after `timeout` seconds."""
    servers = [s for s in servers if s.process.poll() is None]
    for server in servers:
        with contextlib.suppress(ProcessLookupError):
            server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for server in servers:
        try:
            server.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --- CPU accounting -----------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def database_cpu_seconds() -> dict[int, float]:
    """CPU time so far of every PostgreSQL process on this machine, by pid: what the
    database spent, apart from whatever else the machine is doing."""
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone
        if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
            used[int(stat.parent.name)] = process_cpu_seconds(int(stat.parent.name))
    return used


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent not idle, summed over every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK  # guest time is already in user


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by the servers, this process, PostgreSQL and the whole
    machine."""

    wall: float
    servers: tuple[float, ...]
    own: float
    machine: float
    database: dict[int, float]


def cpu_sample(server_pids: Sequence[int]) -> CpuSample:
    """CPU seconds used so far by each server, by this process, by PostgreSQL and by the
    machine."""
    return CpuSample(
        wall=time.perf_counter(),
        servers=tuple(process_cpu_seconds(pid) for pid in server_pids),
        own=process_cpu_seconds(os.getpid()),
        machine=machine_busy_seconds(),
        database=database_cpu_seconds(),
    )


def cpu_usage(before: CpuSample, after: CpuSample) -> dict[str, object]:
    """CPU use between two samples, in percent of one core (200 = two cores busy)."""
    wall = max(after.wall - before.wall, 1e-9)

    def pct(seconds: float) -> float:
        return round(100 * seconds / wall, 1)

    per_server = [pct(a - b) for a, b in zip(after.servers, before.servers, strict=True)]
    servers = sum(a - b for a, b in zip(after.servers, before.servers, strict=True))
    own = after.own - before.own
    machine = after.machine - before.machine
    database = sum(used - before.database.get(pid, 0.0) for pid, used in after.database.items())
    return {
        "servers_pct": pct(servers),
        "per_server_pct": per_server,
        "load_generator_pct": pct(own),
        "database_pct": pct(database),
        "other_pct": pct(max(0.0, machine - servers - own)),
        "machine_pct": pct(machine),
        "machine_capacity_pct": 100 * (os.cpu_count() or 1),
    }


# --- figures --------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def render_table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """A two-column text table: metric and value."""
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    rule = f"+-{'-' * width}-+-{'-' * value_width}-+"
    lines = [title, rule]
    lines += [f"| {name:<{width}} | {value:>{value_width}} |" for name, value in rows]
    lines.append(rule)
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    """Write the figures as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
