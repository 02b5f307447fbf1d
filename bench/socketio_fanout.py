"""Socket.IO broadcast fan-out: N viewers in one live session, flash price updates pinned
by the seller, against the hub and against a Node.js socket.io reference, in one run.

    .venv/bin/python bench/socketio_fanout.py [--clients 1000 5000] [--rate 10] [--seconds 12]
    .venv/bin/python bench/socketio_fanout.py --quick

For each N and each server a fresh server starts on 127.0.0.1: `streamcart serve`
(embedded defaults, a temporary data directory) with a seller, a shop, products and a
live session created over REST, or `bench/node_reference/server.js` with the same cards.
A separate Node.js process (`bench/node_reference/load.js`, socket.io-client over
websockets) connects N guest viewers and the seller, joins them to the session, then the
seller sends `product:pin` at a fixed rate, cycling through the products on show, and
every viewer times each `product:pinned` against the send time stamped by that process.
Prints deliveries/s, p50/p99/max latency, lost deliveries and the server's CPU per
delivery; writes JSON. The npm packages go to the git-ignored `bench/.node/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from array import array
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness
from checkout import git_commit

NODE_REFERENCE = harness.ROOT / "bench" / "node_reference"
NODE_PREFIX = harness.ROOT / "bench" / ".node"
DEFAULT_JSON = harness.RESULTS / "socketio_fanout.json"
PRODUCTS = (
    ("Áo khoác gió", 390_000, 290_000),
    ("Son môi lì", 249_000, 199_000),
    ("Tai nghe không dây", 590_000, 450_000),
    ("Bình giữ nhiệt", 180_000, 129_000),
)
TARGET_P99_MS = 100.0
TARGET_CLIENTS = 5_000
NODE_PARITY = 0.99  # when both keep up, deliveries/s is the offered rate give or take 1 %
NPM_TIMEOUT = 300.0
SETTLE_SECONDS = 2.0
PERCENTILES = (("p50", 50), ("p99", 99), ("max", 100))


# --- command line -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, refused early when they would make an unbounded run."""
    parser = argparse.ArgumentParser(
        description="Socket.IO broadcast fan-out: the hub against a Node.js socket.io reference."
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1_000, 5_000], help="viewer counts (1000 5000)"
    )
    parser.add_argument("--rate", type=float, default=10.0, help="price updates per second (10)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of updates (12)")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=("python", "node"),
        default=["python", "node"],
        help="which servers to run (both)",
    )
    parser.add_argument("--join-concurrency", type=int, default=100, help="joins in flight (100)")
    parser.add_argument(
        "--load-processes",
        type=int,
        default=2,
        help="viewer processes of the load (2), besides the seller's",
    )
    parser.add_argument("--join-timeout", type=float, default=60.0, help="per join, s (60)")
    parser.add_argument(
        "--drain-timeout", type=float, default=90.0, help="wait for late deliveries, s (90)"
    )
    parser.add_argument("--label", default="", help="a note stored in the JSON (e.g. a branch)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 clients, 2 s")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.drain_timeout = [50], 2.0, 20.0
    problems = [
        any(not 1 <= n <= 15_000 for n in args.clients) and "--clients must be 1..15000",
        not 0 < args.rate <= 100 and "--rate must be in (0, 100]",
        not 0 < args.seconds <= 120 and "--seconds must be in (0, 120]",
        not 1 <= args.join_concurrency <= 1_000 and "--join-concurrency must be 1..1000",
        not 1 <= args.load_processes <= 16 and "--load-processes must be 1..16",
        not 0 < args.join_timeout <= 300 and "--join-timeout must be in (0, 300]",
        not 0 < args.drain_timeout <= 600 and "--drain-timeout must be in (0, 600]",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


def raise_open_file_limit(clients: int) -> None:
    """Each viewer is a socket in the load process and one in the server, both children
    of this process: lift the soft limit (inherited) to the hard one, and insist it fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    needed = clients + 1_000
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"open-file limit {hard} is below the {needed} this run needs")


# --- Node.js --------------------------------------------------------------------------


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed: the load generator and reference need it")
    return node


def install_node_packages() -> None:
    """`npm install` the pinned socket.io packages into the ignored bench/.node/, once per
    change of package.json."""
    manifest = NODE_REFERENCE / "package.json"
    installed = NODE_PREFIX / "package.json"
    modules = NODE_PREFIX / "node_modules"
    if (
        installed.exists()
        and installed.read_bytes() == manifest.read_bytes()
        and (modules / "socket.io").is_dir()
        and (modules / "socket.io-client").is_dir()
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: it fetches socket.io for the reference")
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(manifest, installed)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_PREFIX,
        check=True,
        timeout=NPM_TIMEOUT,
    )


def node_env() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(NODE_PREFIX / "node_modules")}


# --- the servers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """What the load process needs to know about the server it loads."""

    url: str
    pid: int
    live_session_id: str
    product_ids: list[str]
    seller_token: str | None


async def set_up_session(url: str) -> tuple[str, str, list[dict]]:
    """Over REST, as a client would: a seller, their shop, the products, a live session
    showing them at live prices, started. Returns the seller's token, the session id and
    the product cards (as `product:pinned` carries them)."""
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        auth, shop = await harness.seller_with_shop(http)
        token = auth["Authorization"].removeprefix("Bearer ")
        live, _ = await harness.scheduled_show(
            http, auth, shop, PRODUCTS, 1_000, "Flash sale tối nay"
        )
        path = f"/api/live-sessions/{live['id']}"
        await harness.expect_json(await http.post(f"{path}/start", headers=auth), 200)
        shown = await harness.expect_json(await http.get(path), 200)
    cards = [
        {"live_session_id": live["id"], **{k: v for k, v in item.items() if k != "position"}}
        for item in shown["products"]
    ]
    return token, live["id"], cards


@contextlib.asynccontextmanager
async def python_server(work_dir: Path) -> AsyncIterator[tuple[Scenario, list[dict]]]:
    """`streamcart serve` with embedded defaults (but the ports), the session set up
    over REST."""
    quiet_ports = {  # nothing else here: RTMP on any free port, no WebRTC port
        "STREAMCART_RTMP_PORT": "0",
        "STREAMCART_WEBRTC_UDP_PORT": "0",
        "STREAMCART_WEBRTC_TCP_PORT": "0",
    }
    server = harness.start_server(quiet_ports, work_dir, 0, harness.serve_command())
    try:
        await harness.wait_healthy([server])
        token, live_id, cards = await set_up_session(server.url)
        ids = [card["product_id"] for card in cards]
        yield Scenario(server.url, server.pid, live_id, ids, token), cards
        harness.check_alive([server])
    finally:
        harness.stop_servers([server])


def start_node_server(work_dir: Path, cards: list[dict]) -> harness.Server:
    """The reference server, given the same product cards as the hub sent."""
    catalogue = work_dir / "catalogue.json"
    by_id = {card["product_id"]: card for card in cards}
    live_id = cards[0]["live_session_id"]
    catalogue.write_text(json.dumps({"live_session_id": live_id, "cards": by_id}))
    port = harness.free_port()
    log_path = work_dir / "node-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node_binary(), str(NODE_REFERENCE / "server.js"), str(port), str(catalogue)],
            env=node_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return harness.Server(process, port, log_path)


@contextlib.asynccontextmanager
async def node_server(work_dir: Path, cards: list[dict]) -> AsyncIterator[Scenario]:
    server = start_node_server(work_dir, cards)
    try:
        await _wait_listening(server)
        ids = [card["product_id"] for card in cards]
        yield Scenario(server.url, server.pid, cards[0]["live_session_id"], ids, None)
        harness.check_alive([server])
    finally:
        harness.stop_servers([server])


async def _wait_listening(server: harness.Server) -> None:
    """Until the port accepts connections (bounded by harness.STARTUP_TIMEOUT)."""
    async with asyncio.timeout(harness.STARTUP_TIMEOUT):
        while True:
            harness.check_alive([server])
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(harness.HOST, server.port)
                writer.close()
                return
            await asyncio.sleep(0.1)


# --- the load ---------------------------------------------------------------------------


class LoadProcess:
    """One `load.js` process: its JSON lines out, JSON commands in, output in a log."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, config: dict, work_dir: Path, name: str) -> LoadProcess:
        config_path = work_dir / f"{name}.json"
        config_path.write_text(json.dumps(config))
        process = await asyncio.create_subprocess_exec(
            node_binary(),
            "--max-old-space-size=4096",
            str(NODE_REFERENCE / "load.js"),
            str(config_path),
            env=node_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(work_dir / f"{name}.log").open("ab"),
            limit=2**26,  # a result line holds a time per pin
        )
        return cls(process, name)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def expect(self, phase: str) -> dict:
        return await harness.read_phase(self.process, self.name, phase)

    async def send(self, command: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


def shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` nearly equal whole shares."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_load(
    args: argparse.Namespace, scenario: Scenario, clients: int, work_dir: Path
) -> dict:
    """One seller process and `--load-processes` viewer processes against one server:
    join, settle, pin at the fixed rate, drain; the server's CPU and every load
    process's is sampled from the first pin to the last result."""
    updates = max(1, round(args.rate * args.seconds))
    base = {
        "url": scenario.url,
        "live_session_id": scenario.live_session_id,
        "product_ids": scenario.product_ids,
        "rate": args.rate,
        "updates": updates,
        "join_concurrency": max(1, -(-args.join_concurrency // args.load_processes)),
        "join_timeout_s": args.join_timeout,
        "drain_timeout_s": args.drain_timeout,
    }
    limit = args.join_timeout * (clients / args.join_concurrency + 2) + args.seconds
    limit += args.drain_timeout + 60
    loads: list[LoadProcess] = []
    try:
        async with asyncio.timeout(limit):
            seller_config = {**base, "role": "seller", "seller_token": scenario.seller_token}
            loads.append(await LoadProcess.start(seller_config, work_dir, f"seller-{clients}"))
            paths = []
            for index, viewers in enumerate(shares(clients, args.load_processes)):
                paths.append(work_dir / f"latencies-{clients}-{index}.bin")
                config = {**base, "role": "viewers", "viewers": viewers}
                config["latencies_path"] = str(paths[-1])
                loads.append(
                    await LoadProcess.start(config, work_dir, f"viewers-{clients}-{index}")
                )
            seller, viewer_loads = loads[0], loads[1:]
            joined = await asyncio.gather(*(load.expect("joined") for load in loads))
            join_s = max(j["joined_at"] for j in joined) - min(j["began_at"] for j in joined)
            print(f"  {sum(j['viewers'] for j in joined):,} joined in {join_s / 1000:.1f} s")
            await asyncio.sleep(SETTLE_SECONDS)
            pids = [scenario.pid, *(load.pid for load in loads)]
            before = harness.cpu_sample(pids)
            await seller.send({"go": True})
            send_times = (await seller.expect("sent"))["send_times"]
            for load in viewer_loads:
                await load.send({"send_times": send_times})
            results = await asyncio.gather(*(load.expect("result") for load in viewer_loads))
            after = harness.cpu_sample(pids)
            await seller.send({"stop": True})
            ack_failures = (await seller.expect("result"))["ack_failures"]
    finally:
        for load in loads:
            await load.close()
    usage = harness.cpu_usage(before, after)
    per_process = usage["per_server_pct"]
    return {
        **figures(results, send_times, paths),
        "viewers": sum(r["viewers"] for r in results),
        "join_failures": sum(j["join_failures"] for j in joined),
        "join_s": round(join_s / 1000, 2),
        "ack_failures": ack_failures,
        "cpu": {
            **usage,
            "server_pct": per_process[0],
            "load_process_pct": round(sum(per_process[1:]), 1),
            "load_processes_pct": per_process[1:],
        },
        "server_cpu_s": after.servers[0] - before.servers[0],
    }


def figures(results: list[dict], send_times: list[float], paths: list[Path]) -> dict:
    """Deliveries, their latencies (every viewer's, from all processes' files) and, per
    pin, the time until the last viewer saw it."""
    latencies = array("d")
    for path in paths:
        latencies.frombytes(path.read_bytes())
    ordered = sorted(latencies)
    received = len(ordered)
    expected = sum(r["viewers"] for r in results) * len(send_times)
    last_arrival = max((r["last_arrival"] for r in results), default=0.0)
    elapsed_s = max(last_arrival - send_times[0], 1e-9) / 1000 if received else 0.0
    to_last = []
    for k, sent_at in enumerate(send_times):
        seen = [r["last_seen"][k] for r in results]
        if all(at is not None for at in seen):
            to_last.append(max(seen) - sent_at)
    to_last.sort()
    return {
        "updates": len(send_times),
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "unmatched": sum(r["unmatched"] for r in results),
        "deliveries_per_s": received / elapsed_s if elapsed_s else 0.0,
        "latency_ms": {q: harness.percentile(ordered, n) for q, n in PERCENTILES},
        "last_viewer_ms": {q: harness.percentile(to_last, n) for q, n in PERCENTILES},
        "pins_seen_by_all": len(to_last),
    }


async def run(args: argparse.Namespace) -> list[dict]:
    """Every N against every server, each on a fresh server."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="streamcart-fanout-") as tmp:
        for clients in args.clients:
            work_dir = Path(tmp) / f"n{clients}"
            work_dir.mkdir()
            async with python_server(work_dir) as (scenario, cards):
                if "python" in args.servers:
                    print(f"python-socketio hub, {clients:,} clients", flush=True)
                    runs.append(
                        summarise("python", await run_load(args, scenario, clients, work_dir))
                    )
            if "node" in args.servers:
                async with node_server(work_dir, cards) as scenario:
                    print(f"node socket.io, {clients:,} clients", flush=True)
                    runs.append(
                        summarise("node", await run_load(args, scenario, clients, work_dir))
                    )
    return runs


# --- the report -------------------------------------------------------------------------


def summarise(server: str, result: dict) -> dict:
    received = result["received"]
    cpu_us = 1e6 * result.pop("server_cpu_s") / received if received else 0.0
    return {
        "server": server,
        "clients": result["viewers"],
        **{k: v for k, v in result.items() if k != "viewers"},
        "deliveries_per_s": round(result["deliveries_per_s"], 1),
        "latency_ms": {k: round(v, 2) for k, v in result["latency_ms"].items()},
        "server_cpu_us_per_delivery": round(cpu_us, 2),
    }


def render_columns(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A text table with one column per figure, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    rule = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    lines = [
        title,
        rule,
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
    ]
    lines.append(rule)
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.append(rule)
    return "\n".join(lines)


def table(runs: list[dict]) -> str:
    header = (
        "server",
        "N",
        "join s",
        "deliveries/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "last viewer p50/p99 ms",
        "lost",
        "CPU %",
        "CPU µs/delivery",
        "load CPU % (busiest)",
    )
    rows = [
        (
            r["server"],
            f"{r['clients']:,}",
            f"{r['join_s']:.1f}",
            f"{r['deliveries_per_s']:,.0f}",
            f"{r['latency_ms']['p50']:.1f}",
            f"{r['latency_ms']['p99']:.1f}",
            f"{r['latency_ms']['max']:.1f}",
            f"{r['last_viewer_ms']['p50']:.1f} / {r['last_viewer_ms']['p99']:.1f}",
            f"{r['lost']:,}",
            f"{r['cpu']['server_pct']:.0f}",
            f"{r['server_cpu_us_per_delivery']:.1f}",
            f"{r['cpu']['load_process_pct']:.0f} ({max(r['cpu']['load_processes_pct']):.0f})",
        )
        for r in runs
    ]
    return render_columns("Socket.IO fan-out (one room, flash price updates)", header, rows)


def targets(runs: list[dict]) -> dict:
    """p99 under 100 ms at 5,000 clients; at least Node's deliveries/s, and joins no
    slower than Node's, at each N."""
    verdicts = {}
    for r in runs:
        if r["server"] != "python":
            continue
        node = next(
            (n for n in runs if n["server"] == "node" and n["clients"] == r["clients"]), None
        )
        verdict: dict[str, object] = {}
        if r["clients"] >= TARGET_CLIENTS:
            verdict["p99_under_100ms"] = r["latency_ms"]["p99"] < TARGET_P99_MS
        if node is not None:
            floor = NODE_PARITY * node["deliveries_per_s"]
            verdict["at_least_node_deliveries"] = r["deliveries_per_s"] >= floor
            verdict["joins_no_slower_than_node"] = r["join_s"] <= node["join_s"]
        verdicts[str(r["clients"])] = verdict
    return verdicts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    raise_open_file_limit(max(args.clients))
    install_node_packages()
    try:
        runs = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: servers and load processes stopped", file=sys.stderr)
        return 130
    summary = {
        "benchmark": "socketio_fanout",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {"rate": args.rate, "seconds": args.seconds, "products": len(PRODUCTS)},
        "runs": runs,
        "targets": targets(runs),
    }
    print(table(runs))
    print(f"targets: {json.dumps(summary['targets'])}")
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
