"""WebRTC viewer fan-out: one 720p30 2 Mbps stream to N viewers, server CPU per viewer,
the project's path with a UDP socket per peer and with one shared UDP port, against
plain aiortc `MediaRelay` fan-out of the same stream, in one run.

    .venv/bin/python bench/webrtc_fanout.py [--viewers 10 25 50 100] [--window 10]
    .venv/bin/python bench/webrtc_fanout.py --quick
    .venv/bin/python bench/webrtc_fanout.py --viewers 100 150 200 --pin   # one core each

A 720p30 ~2 Mbps H.264 (no B-frames, keyframe every 2 s) + AAC FLV file is encoded once
with the ffmpeg CLI, and remuxed (video copied, audio to Opus) to MPEG-TS for the
reference. For each server and N, a fresh server process starts on 127.0.0.1
(`webrtc_peers.py`): "ours" is the project's WHEP routes, WhepService, StreamRegistry
and StreamHub, the hub fed the FLV tags at real time, each peer on a UDP socket of its
own; "port" is the same with every peer on one shared UDP port (IcePort); "relay" is
aiortc's MediaPlayer (decode=False) relayed by MediaRelay. The order of the servers is
reversed at every other N. A separate viewers process joins N aiortc peers over HTTP
and counts the video frames each one's jitter buffer completes. Server and viewers CPU
come from /proc over the measured window. Prints a table, writes JSON.
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
from webrtc_peers import OURS_OFFER_PATH, RELAY_OFFER_PATH

PEERS = Path(__file__).resolve().parent / "webrtc_peers.py"
DEFAULT_JSON = harness.RESULTS / "webrtc_fanout.json"
FPS = 30
KEYFRAME_SECONDS = 2
VIDEO_BITRATE = "2M"
MIN_DELIVERED = 0.95
TARGET_VIEWERS_PER_CORE = 1_000
# "port" is the "ours" app with every peer on one shared UDP port: the same offer path.
SERVERS = {"ours": OURS_OFFER_PATH, "port": OURS_OFFER_PATH, "relay": RELAY_OFFER_PATH}
PROJECT_SERVERS = ("ours", "port")  # fed the FLV, limited to MAX_VIEWERS
IDLE_SECONDS = 3.0
SERVER_CPU, VIEWERS_CPU = 0, 1  # with --pin
SOURCE_MARGIN_SECONDS = 10.0
ENCODE_TIMEOUT = 600.0


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
    parser.add_argument("--label", default="", help="a note stored in the JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 viewers, 5 s")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.viewers, args.window, args.warmup = [5], 5.0, 2.0
    args.servers = list(dict.fromkeys(args.servers))
    problems = [
        any(not 1 <= n <= 500 for n in args.viewers) and "--viewers must be 1..500",
        not 1 <= args.window <= 120 and "--window must be 1..120",
        not 0 <= args.warmup <= 30 and "--warmup must be 0..30",
        not 1 <= args.join_concurrency <= 100 and "--join-concurrency must be 1..100",
        not 1 <= args.join_timeout <= 300 and "--join-timeout must be 1..300",
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


def start_server(plan: Plan, server: str) -> harness.Server:
    """One fresh server process on a free port; its output goes to a log file."""
    port = harness.free_port()
    source = plan.flv if server in PROJECT_SERVERS else plan.ts
    command = [sys.executable, str(PEERS), server, str(source), str(port)]
    if server in PROJECT_SERVERS:
        command.append(str(max(plan.args.viewers) + 10))
    log_path = plan.work / f"{server}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=harness.ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    if plan.args.pin:
        os.sched_setaffinity(process.pid, {SERVER_CPU})
    return harness.Server(process, port, log_path)


async def measure(plan: Plan, server: harness.Server, offer_path: str, viewers: int) -> dict:
    """Idle CPU first (the stream, no viewers), then the viewers process's run."""
    before = harness.cpu_sample([server.pid])
    await asyncio.sleep(IDLE_SECONDS)
    idle = harness.cpu_usage(before, harness.cpu_sample([server.pid]))["servers_pct"]
    config = {
        "offer_url": f"{server.url}{offer_path}",
        "viewers": viewers,
        "join_concurrency": plan.args.join_concurrency,
        "join_timeout_s": plan.args.join_timeout,
        "warmup_s": plan.args.warmup,
        "window_s": plan.args.window,
    }
    config_path = plan.work / f"viewers-{server.port}.json"
    config_path.write_text(json.dumps(config))
    with (plan.work / f"viewers-{server.port}.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PEERS),
            "viewers",
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
            result = await follow(process, server)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    return {"idle_server_pct": idle, **result}


async def follow(process: asyncio.subprocess.Process, server: harness.Server) -> dict:
    message, usage, _ = await harness.follow_load(process, server.pid, "viewers")
    harness.check_alive([server])
    server_pct, viewers_pct = usage["per_server_pct"]
    return {**message, "server_pct": server_pct, "viewers_process_pct": viewers_pct,
            "machine_pct": usage["machine_pct"]}  # fmt: skip


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


async def run_one(plan: Plan, server_name: str, viewers: int) -> dict:
    server = start_server(plan, server_name)
    try:
        await harness.wait_healthy([server])
        result = await measure(plan, server, SERVERS[server_name], viewers)
    finally:
        harness.stop_servers([server])
    summary = summarise(server_name, result)
    if server_name == "port":
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


async def run(plan: Plan) -> list[dict]:
    runs = []
    for index, viewers in enumerate(plan.args.viewers):
        for server in server_order(plan.args.servers, index):
            print(f"{server}, {viewers} viewers", flush=True)
            runs.append(await run_one(plan, server, viewers))
    return runs


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


def port_over_ours(runs: list[dict], best: dict[str, int | None]) -> dict:
    """The shared port's viewers per core over the socket-per-peer path's: at each N
    where both ran and held delivery, and of their headlines."""

    def ratio(port: int | None, ours: int | None) -> float | None:
        return round(port / ours, 2) if port and ours else None

    per_core = {(r["server"], r["viewers"]): r["viewers_per_core"] for r in runs}
    both = [n for n in dict.fromkeys(r["viewers"] for r in runs)
            if ("ours", n) in per_core and ("port", n) in per_core]  # fmt: skip
    return {
        "per_n": {str(n): ratio(per_core["port", n], per_core["ours", n]) for n in both},
        "headline": ratio(best.get("port"), best.get("ours")),
    }


def table(runs: list[dict], ratios: dict) -> str:
    header = ("server", "N", "joined", "delivered %", "worst %", "CPU %", "idle %",
              "CPU %/viewer", "viewers/core", "port / ours", "port drops",
              "viewers proc %", "machine %")  # fmt: skip

    def ratio(r: dict) -> str:
        value = ratios["per_n"].get(str(r["viewers"])) if r["server"] == "port" else None
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
    with tempfile.TemporaryDirectory(prefix="streamcart-webrtc-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        flv, ts = encode_sources(work, source_seconds + SOURCE_MARGIN_SECONDS)
        print(f"sources encoded in {time.perf_counter() - started:.1f} s", flush=True)
        try:
            runs = asyncio.run(run(Plan(args, flv, ts, work)))
        except KeyboardInterrupt:
            print("interrupted: servers and viewers stopped", file=sys.stderr)
            return 130
        source_mbps = round(
            flv.stat().st_size * 8 / (source_seconds + SOURCE_MARGIN_SECONDS) / 1e6, 2
        )
    best = best_per_core(runs)
    ratios = port_over_ours(runs, best)
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
        },
        "runs": runs,
        "viewers_per_core": best,
        "port_over_ours": ratios,
        "target_viewers_per_core": TARGET_VIEWERS_PER_CORE,
        "target_met": met.get("ours", False),
        "target_met_by_server": met,
    }
    print(table(runs, ratios))
    print(f"viewers per core at >= {100 * MIN_DELIVERED:.0f}% delivered: {json.dumps(best)}")
    if ratios["per_n"]:
        print(f"port / ours viewers per core: {json.dumps(ratios)}")
    verdicts = ", ".join(f"{s} {'met' if ok else 'not met'}" for s, ok in met.items())
    print(f"target {TARGET_VIEWERS_PER_CORE:,} viewers per core: {verdicts or '-'}")
    harness.write_json(args.json, summary)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
