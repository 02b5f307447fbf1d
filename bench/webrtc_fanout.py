"""WebRTC viewer fan-out: one 720p30 2 Mbps stream to N viewers, server CPU per viewer,
the project's path with a UDP socket per peer and with one shared UDP port, against
plain aiortc `MediaRelay` fan-out of the same stream, in one run.

    .venv/bin/python bench/webrtc_fanout.py [--viewers 10 25 50 100] [--window 10]
    .venv/bin/python bench/webrtc_fanout.py --quick
    .venv/bin/python bench/webrtc_fanout.py --viewers 100 150 200 --pin   # one core each
    .venv/bin/python bench/webrtc_fanout.py --viewers 100 --servers port --relay-edges 1 5 10 --pin
    .venv/bin/python bench/webrtc_fanout.py --viewers 25 100 --servers port --source both --pin

A 720p30 ~2 Mbps H.264 (no B-frames, keyframe every 2 s) + AAC FLV file is encoded once
with the ffmpeg CLI, and remuxed (video copied, audio to Opus) to MPEG-TS for the
reference. For each server and N, a fresh server process starts on 127.0.0.1
(`webrtc_peers.py`): "ours" is the project's WHEP routes, WhepService, StreamRegistry
and StreamHub, the hub fed the FLV tags at real time, each peer on a UDP socket of its
own; "port" is the same with every peer on one shared UDP port (IcePort); "paced" is
"port" with each video frame's packets paced (signaling/rtp/pacer.py; the others send a
frame at once, as before pacing came); "relay" is
aiortc's MediaPlayer (decode=False) relayed by MediaRelay. The order of the servers is
reversed at every other N. A separate viewers process joins N aiortc peers over HTTP
and counts the video frames each one's jitter buffer completes. Server and viewers CPU
come from /proc over the measured window. Prints a table, writes JSON.

With `--source whip` or `both`, a "whip" server runs too (`whip_peers.py`): the "port"
app whose stream comes in over the project's WHIP ingest instead of from the FLV file,
sent by an aiortc publisher process (the MPEG-TS file's H.264 and Opus as stored, at
real time: the same stream) on the viewers' CPU with --pin; its row sits beside
"port" (the RTMP path's), and `whip_over_port` compares their viewers per core.

With `--relay-edges E ...` it then measures the relay between replicas: for each E, a
fresh origin (the "port" server) and a pulls process opening E relay pulls of its
stream, as E edges would, each decoded and counted: the origin's CPU above its idle per
pull. Then one origin, one "edge" server (`RelayEdge` pulling from the origin) and N
viewers (the first --viewers) on the edge: the edge's CPU per viewer and viewers per
core beside the "port" server's at the same N, and the origin's CPU apart. A second
table, and "relay" in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import harness
from checkout import git_commit
from socketio_fanout import raise_open_file_limit, render_columns
from webrtc_peers import OURS_OFFER_PATH, RELAY_OFFER_PATH, RELAY_PULL_PATH

PEERS = Path(__file__).resolve().parent / "webrtc_peers.py"
WHIP_PEERS = Path(__file__).resolve().parent / "whip_peers.py"
DEFAULT_JSON = harness.RESULTS / "webrtc_fanout.json"
FPS = 30
KEYFRAME_SECONDS = 2
VIDEO_BITRATE = "2M"
MIN_DELIVERED = 0.95
TARGET_VIEWERS_PER_CORE = 1_000
# "port" is the "ours" app with every peer on one shared UDP port: the same offer path.
SERVERS = {
    "ours": OURS_OFFER_PATH,
    "port": OURS_OFFER_PATH,
    "paced": OURS_OFFER_PATH,
    "relay": RELAY_OFFER_PATH,
}
PROJECT_SERVERS = ("ours", "port", "paced")  # fed the FLV, limited to MAX_VIEWERS
WHIP = "whip"  # the "port" app fed over WHIP (whip_peers.py)
OFFER_PATHS = {**SERVERS, WHIP: OURS_OFFER_PATH}
SOURCES = ("rtmp", "whip", "both")
IDLE_SECONDS = 3.0
SERVER_CPU, VIEWERS_CPU = 0, 1  # with --pin
SOURCE_MARGIN_SECONDS = 10.0
ENCODE_TIMEOUT = 600.0
ORIGIN, EDGE = "port", "edge"  # the relay's servers (webrtc_peers.py)
MAX_RELAY_EDGES = 20


# --- command line -----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, refused early when they would make an unbounded run."""
    parser = argparse.ArgumentParser(
        description="WebRTC fan-out: the project's WHEP path (a socket per peer, and one "
        "shared UDP port) against aiortc's MediaRelay."
    )
    parser.add_argument(
        "--viewers", type=int, nargs="+", default=[10, 25, 50, 100], help="N (10 25 50 100)"
    )
    parser.add_argument(
        "--servers", nargs="+", choices=tuple(SERVERS), default=list(SERVERS), help="(all)"
    )
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after joining (3)")
    parser.add_argument("--join-concurrency", type=int, default=10, help="joins at once (10)")
    parser.add_argument("--join-timeout", type=float, default=60.0, help="all joins, s (60)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, viewers on CPU 1 (no migrations; needs 2 CPUs)",
    )
    parser.add_argument(
        "--relay-edges",
        type=int,
        nargs="+",
        metavar="E",
        help="then the relay: origin CPU per edge at E pulls, and edge CPU per viewer at the "
        "first --viewers N beside the port server's (off)",
    )
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default="rtmp",
        help="the project's stream fed from the FLV file as over RTMP (the --servers), "
        "over WHIP (the whip server), or both (rtmp)",
    )
    parser.add_argument("--label", default="", help="a note stored in the JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 viewers, 5 s")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.viewers, args.window, args.warmup = [5], 5.0, 2.0
    args.servers = [
        *(dict.fromkeys(args.servers) if args.source != "whip" else ()),
        *((WHIP,) if args.source != "rtmp" else ()),
    ]
    problems = [
        any(not 1 <= n <= 500 for n in args.viewers) and "--viewers must be 1..500",
        not 1 <= args.window <= 120 and "--window must be 1..120",
        not 0 <= args.warmup <= 30 and "--warmup must be 0..30",
        not 1 <= args.join_concurrency <= 100 and "--join-concurrency must be 1..100",
        not 1 <= args.join_timeout <= 300 and "--join-timeout must be 1..300",
        any(not 1 <= e <= MAX_RELAY_EDGES for e in args.relay_edges or ())
        and f"--relay-edges must be 1..{MAX_RELAY_EDGES}",
        args.pin and not {0, 1} <= os.sched_getaffinity(0) and "--pin needs CPUs 0 and 1",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- the source -----------------------------------------------------------------------


def ffmpeg(*arguments: str) -> None:
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *arguments]
    subprocess.run(command, check=True, timeout=ENCODE_TIMEOUT)


def encode_sources(work: Path, seconds: float) -> tuple[Path, Path]:
    """The FLV an OBS publisher would send (ours) and the same video with Opus audio in
    MPEG-TS (the reference: MediaPlayer hands out its packets as stored, and TS stores
    H.264 as Annex-B, what aiortc's packetizer splits; browsers need Opus)."""
    flv, ts = work / "source.flv", work / "source.ts"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{seconds:.0f}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
        "-g", str(KEYFRAME_SECONDS * FPS), "-pix_fmt", "yuv420p",
        "-b:v", VIDEO_BITRATE, "-maxrate", VIDEO_BITRATE, "-bufsize", VIDEO_BITRATE,
        "-c:a", "aac", "-b:a", "128k",
        "-f", "flv", str(flv),
    )  # fmt: skip
    ffmpeg(
        "-i", str(flv), "-c:v", "copy", "-c:a", "libopus", "-b:a", "64k", "-f", "mpegts", str(ts)
    )
    return flv, ts


# --- one measured run -----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What every run shares: the options, the sources and the scratch directory."""

    args: argparse.Namespace
    flv: Path
    ts: Path
    work: Path


def start_server(plan: Plan, server: str, origin: harness.Server | None = None) -> harness.Server:
    """One fresh server process on a free port; its output goes to a log file. An edge
    pulls the stream from `origin`."""
    port = harness.free_port()
    if server == EDGE:
        assert origin is not None
        source = origin.url
    else:
        source = str(plan.flv if server in PROJECT_SERVERS else plan.ts)
    command = [sys.executable, str(PEERS), server, source, str(port)]
    if server == WHIP:
        command = [sys.executable, str(WHIP_PEERS), "server", str(port)]
    if server in (*PROJECT_SERVERS, EDGE, WHIP):
        command.append(str(max(plan.args.viewers) + 10))
    log_path = plan.work / f"{server}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=harness.ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    if plan.args.pin:
        os.sched_setaffinity(process.pid, {SERVER_CPU})
    return harness.Server(process, port, log_path)


async def idle_cpu(servers: list[harness.Server]) -> list[float]:
    """Each server's CPU over IDLE_SECONDS, before any load."""
    before = harness.cpu_sample([server.pid for server in servers])
    await asyncio.sleep(IDLE_SECONDS)
    after = harness.cpu_sample([server.pid for server in servers])
    return harness.cpu_usage(before, after)["per_server_pct"]


def viewers_config(plan: Plan, offer_url: str, viewers: int) -> dict:
    return {
        "offer_url": offer_url,
        "viewers": viewers,
        "join_concurrency": plan.args.join_concurrency,
        "join_timeout_s": plan.args.join_timeout,
        "warmup_s": plan.args.warmup,
        "window_s": plan.args.window,
    }


async def measure(plan: Plan, server: harness.Server, offer_path: str, viewers: int) -> dict:
    """Idle CPU first (the stream, no viewers), then the viewers process's run."""
    (idle,) = await idle_cpu([server])
    config = viewers_config(plan, f"{server.url}{offer_path}", viewers)
    result = await run_load(plan, "viewers", config, [server])
    (server_pct,) = result.pop("servers_pct")
    viewers_pct = result.pop("load_process_pct")
    return {"idle_server_pct": idle, **result, "server_pct": server_pct,
            "viewers_process_pct": viewers_pct}  # fmt: skip


async def run_load(plan: Plan, kind: str, config: dict, servers: list[harness.Server]) -> dict:
    """One load process ("viewers" or "pulls", webrtc_peers.py) on VIEWERS_CPU with
    --pin, followed to its result: that, each server's CPU over its window
    (`servers_pct`, in the order given), its own and the machine's."""
    tag = f"{kind}-{servers[-1].port}"
    config_path = plan.work / f"{tag}.json"
    config_path.write_text(json.dumps(config))
    with (plan.work / f"{tag}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PEERS),
            kind,
            str(config_path),
            cwd=harness.ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    if plan.args.pin:
        os.sched_setaffinity(process.pid, {VIEWERS_CPU})
    limit = plan.args.join_timeout + plan.args.warmup + plan.args.window + 60
    try:
        async with asyncio.timeout(limit):
            message, usage = await follow(process, [server.pid for server in servers], kind)
        harness.check_alive(servers)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    *servers_pct, load_pct = usage["per_server_pct"]
    return {**message, "servers_pct": servers_pct, "load_process_pct": load_pct,
            "machine_pct": usage["machine_pct"]}  # fmt: skip


async def follow(
    process: asyncio.subprocess.Process, server_pids: list[int], what: str
) -> tuple[dict, dict]:
    """Read the load process's JSON lines ("start", "end", "error", "result"): its result
    and the CPU of each server and of the load process (last in `per_server_pct`)
    sampled between its "start" and "end"."""
    assert process.stdout is not None
    pids = [*server_pids, process.pid]
    before: harness.CpuSample | None = None
    usage: dict = {}
    while line := await process.stdout.readline():
        message = json.loads(line)
        phase = message.pop("phase")
        if phase == "start":
            before = harness.cpu_sample(pids)
        elif phase == "end" and before is not None:
            usage = harness.cpu_usage(before, harness.cpu_sample(pids))
        elif phase == "joined":
            print(f"  {message['viewers']:,} joined in {message['join_s']:.1f} s", flush=True)
        elif phase == "error":
            raise RuntimeError(f"{what} process failed: {message['message']}")
        elif phase == "result":
            if not usage:
                raise RuntimeError(f"{what} process gave a result without a window")
            return message, usage
    raise RuntimeError(f"{what} process ended without a result ({await process.wait()})")


def server_report(server: harness.Server) -> dict | None:
    """The "server" JSON line a stopped server printed (the "port" server: what its
    shared port dropped), or None."""
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.pop("phase", None) == "server":
                return message
    return None


async def whip_publisher(plan: Plan, server: harness.Server) -> asyncio.subprocess.Process:
    """The aiortc publisher of the MPEG-TS file to the whip server, once connected
    and its first keyframe (one every KEYFRAME_SECONDS) in the hub."""
    seconds = IDLE_SECONDS + plan.args.join_timeout + plan.args.warmup + plan.args.window
    with (plan.work / f"publisher-{server.port}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(WHIP_PEERS), "publisher", server.url, str(plan.ts),
            str(seconds + SOURCE_MARGIN_SECONDS), cwd=harness.ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
    if plan.args.pin:
        os.sched_setaffinity(process.pid, {VIEWERS_CPU})
    try:
        async with asyncio.timeout(harness.STARTUP_TIMEOUT):
            await harness.read_phase(process, "the WHIP publisher", "published")
    except BaseException:
        process.kill()
        await process.wait()
        raise
    await asyncio.sleep(KEYFRAME_SECONDS)
    return process


async def run_one(plan: Plan, server_name: str, viewers: int) -> dict:
    server = start_server(plan, server_name)
    publisher = None
    try:
        await harness.wait_healthy([server])
        if server_name == WHIP:
            publisher = await whip_publisher(plan, server)
        result = await measure(plan, server, OFFER_PATHS[server_name], viewers)
    finally:
        await harness.stop_show(publisher, server)
    summary = summarise(server_name, result)
    if server_name in ("port", "paced", WHIP):
        summary["ice_port"] = server_report(server)
        if summary["ice_port"] is None:
            print(f"  no report from the port server:\n{server.log_tail()}", file=sys.stderr)
        elif summary["ice_port"]["dropped"]:
            print(f"  the shared port dropped {summary['ice_port']['by_reason']}", flush=True)
    return summary


def server_order(servers: list[str], index: int) -> list[str]:
    """The servers as given at every even N, reversed at every odd one: a slow drift in
    the machine's speed then favours none of them."""
    return servers if index % 2 == 0 else servers[::-1]


async def run(plan: Plan) -> tuple[list[dict], dict | None]:
    runs = []
    for index, viewers in enumerate(plan.args.viewers):
        for server in server_order(plan.args.servers, index):
            print(f"{server}, {viewers} viewers", flush=True)
            runs.append(await run_one(plan, server, viewers))
    relay = await run_relay(plan, runs) if plan.args.relay_edges else None
    return runs, relay


# --- the relay between replicas ---------------------------------------------------------


async def run_relay(plan: Plan, runs: list[dict]) -> dict:
    """Origin CPU per edge at each E, then edge CPU per viewer at the first N beside the
    port server's at that N (this run's, or one more run if --servers left it out)."""
    per_edge = []
    for edges in plan.args.relay_edges:
        print(f"relay: origin, {edges} edge pulls", flush=True)
        per_edge.append(await run_origin(plan, edges))
    viewers = plan.args.viewers[0]
    print(f"relay: origin, one edge, {viewers} viewers on the edge", flush=True)
    edge = await run_edge(plan, viewers)
    port = next((r for r in runs if r["server"] == ORIGIN and r["viewers"] == viewers), None)
    if port is None:
        print(f"{ORIGIN}, {viewers} viewers (beside the edge)", flush=True)
        port = await run_one(plan, ORIGIN, viewers)
    ratio = None
    if edge["viewers_per_core"] and port["viewers_per_core"]:
        ratio = round(edge["viewers_per_core"] / port["viewers_per_core"], 2)
    return {"origin_per_edge": per_edge, "edge": edge, "port": port, "edge_over_port": ratio}


async def run_origin(plan: Plan, edges: int) -> dict:
    """A fresh origin: its idle CPU (the stream, nobody pulling), then a pulls process's
    `edges` relay pulls, the origin's CPU over their window."""
    origin = start_server(plan, ORIGIN)
    try:
        await harness.wait_healthy([origin])
        (idle,) = await idle_cpu([origin])
        config = {
            "relay_url": f"{origin.url}{RELAY_PULL_PATH}",
            "pulls": edges,
            "join_timeout_s": plan.args.join_timeout,
            "warmup_s": plan.args.warmup,
            "window_s": plan.args.window,
        }
        result = await run_load(plan, "pulls", config, [origin])
    finally:
        harness.stop_servers([origin])
    return summarise_origin(idle, result)


async def run_edge(plan: Plan, viewers: int) -> dict:
    """A fresh origin and an edge pulling from it (from its start); both idle CPUs, then
    the viewers process's N viewers on the edge, both servers' CPU over its window."""
    origin = start_server(plan, ORIGIN)
    servers = [origin]
    try:
        await harness.wait_healthy([origin])
        edge = start_server(plan, EDGE, origin)
        servers.append(edge)
        await harness.wait_healthy([edge])
        origin_idle, edge_idle = await idle_cpu(servers)
        config = viewers_config(plan, f"{edge.url}{OURS_OFFER_PATH}", viewers)
        result = await run_load(plan, "viewers", config, servers)
    finally:
        harness.stop_servers(servers[::-1])  # the edge first: its pull ends on its side
    origin_pct, edge_pct = result.pop("servers_pct")
    viewers_pct = result.pop("load_process_pct")
    summary = summarise(EDGE, {**result, "server_pct": edge_pct, "idle_server_pct": edge_idle,
                               "viewers_process_pct": viewers_pct})  # fmt: skip
    summary |= {"origin_pct": origin_pct, "idle_origin_pct": origin_idle}
    summary["ice_port"] = server_report(edge)
    if summary["ice_port"] and summary["ice_port"]["dropped"]:
        print(f"  the edge's shared port dropped {summary['ice_port']['by_reason']}", flush=True)
    return summary


def summarise_origin(idle: float, result: dict) -> dict:
    """As `summarise`, per edge pull: delivery from the video frames each pull decoded,
    the origin's CPU above its idle per pull, and pulls per core (what is left of a core
    divided by it) when delivery held."""
    edges, frames = result["viewers"], result["frames"]
    expected = FPS * result["window_s"]
    delivered = sum(frames) / (edges * expected)
    origin_pct = result["servers_pct"][0]
    per_edge = max(origin_pct - idle, 0.0) / edges
    per_core = None
    if delivered >= MIN_DELIVERED and per_edge > 0:
        per_core = round((100 - idle) / per_edge)
    mbps = [8 * size / result["window_s"] / 1e6 for size in result["received_bytes"]]
    return {
        "edges": edges,
        "connected": edges - result["join_failures"],
        "connected_at_end": result["connected_at_end"],
        "window_s": round(result["window_s"], 2),
        "frames_expected_per_edge": round(expected),
        "delivered_pct": round(100 * delivered, 1),
        "worst_edge_pct": round(100 * min(frames) / expected, 1),
        "mbps_per_edge": round(sum(mbps) / edges, 2),
        "origin_pct": origin_pct,
        "idle_origin_pct": idle,
        "origin_pct_per_edge": round(per_edge, 3),
        "edges_per_core": per_core,
        "pulls_process_pct": result["load_process_pct"],
        "machine_pct": result["machine_pct"],
    }


def relay_table(relay: dict) -> str:
    header = ("relay", "E / N", "delivered %", "worst %", "CPU %", "idle %", "CPU %/each",
              "each/core", "origin %", "Mbps/edge", "load proc %", "machine %")  # fmt: skip

    def per_core(value: int | None) -> str:
        return f"{value:,}" if value else "-"

    rows = [
        (
            "origin, per edge",
            str(r["edges"]),
            f"{r['delivered_pct']:.1f}",
            f"{r['worst_edge_pct']:.1f}",
            f"{r['origin_pct']:.1f}",
            f"{r['idle_origin_pct']:.1f}",
            f"{r['origin_pct_per_edge']:.3f}",
            per_core(r["edges_per_core"]),
            f"{r['origin_pct']:.1f}",
            f"{r['mbps_per_edge']:.2f}",
            f"{r['pulls_process_pct']:.0f}",
            f"{r['machine_pct']:.0f}",
        )
        for r in relay["origin_per_edge"]
    ]
    for name, r in (("edge, per viewer", relay["edge"]), ("port, per viewer", relay["port"])):
        rows.append(
            (
                name,
                str(r["viewers"]),
                f"{r['delivered_pct']:.1f}",
                f"{r['worst_viewer_pct']:.1f}",
                f"{r['server_pct']:.1f}",
                f"{r['idle_server_pct']:.1f}",
                f"{r['server_pct_per_viewer']:.3f}",
                per_core(r["viewers_per_core"]),
                f"{r['origin_pct']:.1f}" if "origin_pct" in r else "-",
                "-",
                f"{r['viewers_process_pct']:.0f}",
                f"{r['machine_pct']:.0f}",
            )
        )
    title = ("Relay between replicas: the origin's CPU per edge pull (E), the edge's per "
             "viewer (N) beside the port server's (CPU in % of one core)")  # fmt: skip
    return render_columns(title, header, rows)


# --- the figures ----------------------------------------------------------------------


def summarise(server: str, result: dict) -> dict:
    """Delivery = frames counted / (N x the source's frame rate x the window), failed
    joins included as zero. CPU per viewer is the server's CPU above its idle (the
    stream with nobody watching), and viewers per core what is left of a core divided
    by it, given only when delivery held."""
    viewers, frames = result["viewers"], result["frames"]
    expected = FPS * result["window_s"]
    delivered = sum(frames) / (viewers * expected)
    per_viewer = max(result["server_pct"] - result["idle_server_pct"], 0.0) / viewers
    per_core = None
    if delivered >= MIN_DELIVERED and per_viewer > 0:
        per_core = round((100 - result["idle_server_pct"]) / per_viewer)
    return {
        "server": server,
        "viewers": viewers,
        "joined": viewers - result["join_failures"],
        "connected_at_end": result["connected_at_end"],
        "window_s": round(result["window_s"], 2),
        "frames_expected_per_viewer": round(expected),
        "delivered_pct": round(100 * delivered, 1),
        "worst_viewer_pct": round(100 * min(frames) / expected, 1),
        "server_pct": result["server_pct"],
        "idle_server_pct": result["idle_server_pct"],
        "server_pct_per_viewer": round(per_viewer, 3),
        "viewers_per_core": per_core,
        "viewers_process_pct": result["viewers_process_pct"],
        "machine_pct": result["machine_pct"],
    }


def best_per_core(runs: list[dict]) -> dict[str, int | None]:
    """Per server, the estimate from the largest N whose delivery held (the fixed cost
    is best amortised there)."""
    best: dict[str, int | None] = {}
    for server in dict.fromkeys(r["server"] for r in runs):
        held = [r for r in runs if r["server"] == server and r["viewers_per_core"]]
        best[server] = max(held, key=lambda r: r["viewers"])["viewers_per_core"] if held else None
    return best


def over(runs: list[dict], best: dict[str, int | None], server: str, reference: str) -> dict:
    """`server`'s viewers per core over `reference`'s: at each N where both ran and held
    delivery, and of their headlines."""

    def ratio(mine: int | None, theirs: int | None) -> float | None:
        return round(mine / theirs, 2) if mine and theirs else None

    per_core = {(r["server"], r["viewers"]): r["viewers_per_core"] for r in runs}
    both = [n for n in dict.fromkeys(r["viewers"] for r in runs)
            if (server, n) in per_core and (reference, n) in per_core]  # fmt: skip
    return {
        "per_n": {str(n): ratio(per_core[server, n], per_core[reference, n]) for n in both},
        "headline": ratio(best.get(server), best.get(reference)),
    }


def table(runs: list[dict], ratios: dict) -> str:
    header = ("server", "N", "joined", "delivered %", "worst %", "CPU %", "idle %",
              "CPU %/viewer", "viewers/core", "vs reference", "port drops",
              "viewers proc %", "machine %")  # fmt: skip

    def ratio(r: dict) -> str:
        """port / ours, paced / port, whip / port: the shared port's cost, pacing's,
        and a WHIP source's against an RTMP one."""
        against = {"port": "port_over_ours", "paced": "paced_over_port",
                   WHIP: "whip_over_port"}.get(r["server"])  # fmt: skip
        value = ratios[against]["per_n"].get(str(r["viewers"])) if against else None
        return f"{value:.2f}" if value else "-"

    def drops(r: dict) -> str:
        report = r.get("ice_port")
        return "-" if report is None else str(report["dropped"])

    rows = [
        (
            r["server"],
            str(r["viewers"]),
            str(r["joined"]),
            f"{r['delivered_pct']:.1f}",
            f"{r['worst_viewer_pct']:.1f}",
            f"{r['server_pct']:.1f}",
            f"{r['idle_server_pct']:.1f}",
            f"{r['server_pct_per_viewer']:.3f}",
            f"{r['viewers_per_core']:,}" if r["viewers_per_core"] else "-",
            ratio(r),
            drops(r),
            f"{r['viewers_process_pct']:.0f}",
            f"{r['machine_pct']:.0f}",
        )
        for r in runs
    ]
    title = "WebRTC fan-out, one 720p30 2 Mbps H.264 + Opus stream (CPU in % of one core)"
    return render_columns(title, header, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    raise_open_file_limit(2 * max(args.viewers))
    source_seconds = IDLE_SECONDS + args.join_timeout + args.warmup + args.window
    if args.relay_edges:  # the origin streams while the edge starts too
        source_seconds += harness.STARTUP_TIMEOUT
    with tempfile.TemporaryDirectory(prefix="streamcart-webrtc-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        flv, ts = encode_sources(work, source_seconds + SOURCE_MARGIN_SECONDS)
        print(f"sources encoded in {time.perf_counter() - started:.1f} s", flush=True)
        try:
            runs, relay = asyncio.run(run(Plan(args, flv, ts, work)))
        except KeyboardInterrupt:
            print("interrupted: servers and viewers stopped", file=sys.stderr)
            return 130
        source_mbps = round(
            flv.stat().st_size * 8 / (source_seconds + SOURCE_MARGIN_SECONDS) / 1e6, 2
        )
    best = best_per_core(runs)
    ratios = {
        "port_over_ours": over(runs, best, "port", "ours"),
        "paced_over_port": over(runs, best, "paced", "port"),
        "whip_over_port": over(runs, best, WHIP, "port"),
    }
    met = {s: (best[s] or 0) >= TARGET_VIEWERS_PER_CORE for s in PROJECT_SERVERS if s in best}
    summary = {
        "benchmark": "webrtc_fanout",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "label": args.label,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "config": {
            "fps": FPS,
            "video_bitrate": VIDEO_BITRATE,
            "source_mbps": source_mbps,
            "window_s": args.window,
            "warmup_s": args.warmup,
            "pinned": args.pin,
            "source": args.source,
        },
        "runs": runs,
        "viewers_per_core": best,
        **ratios,
        "target_viewers_per_core": TARGET_VIEWERS_PER_CORE,
        "target_met": met.get("ours", False),
        "target_met_by_server": met,
    }
    if relay is not None:
        summary["relay"] = {"relay_edges": args.relay_edges, **relay}
    print(table(runs, ratios))
    print(f"viewers per core at >= {100 * MIN_DELIVERED:.0f}% delivered: {json.dumps(best)}")
    for name, ratio in ratios.items():
        if ratio["per_n"]:
            print(f"{name.replace('_over_', ' / ')} viewers per core: {json.dumps(ratio)}")
    verdicts = ", ".join(f"{s} {'met' if ok else 'not met'}" for s, ok in met.items())
    print(f"target {TARGET_VIEWERS_PER_CORE:,} viewers per core: {verdicts or '-'}")
    if relay is not None:
        print(relay_table(relay))
        per_edge = {r["edges"]: r["origin_pct_per_edge"] for r in relay["origin_per_edge"]}
        print(f"origin CPU % per edge, by E: {json.dumps(per_edge)}")
        print(f"edge / port viewers per core: {relay['edge_over_port'] or '-'}")
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
