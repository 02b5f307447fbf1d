"""Low-Latency HLS: glass-to-glass latency in Chromium, and viewers per core served by
the app, by nginx's cache in front of it, and by nginx from disk, in one run.

    .venv/bin/python bench/hls.py                       # both parts, 50 and 200 viewers
    .venv/bin/python bench/hls.py --viewers 100 300 --window 15 --pin
    .venv/bin/python bench/hls.py --parts viewers --quick

Latency: a fresh `streamcart serve` (embedded defaults, 500 ms parts, 1 s segments)
gets a live 720p30 stream from the ffmpeg CLI (testsrc2 encoded as it is generated,
`-tune zerolatency -bf 2`, a keyframe a second, RTMP to 127.0.0.1), and hls.js in
low-latency mode (installed from the npm registry into `.cache/hls.js` as the tests
do) plays `/hls/{id}/index.m3u8` in headless Chromium. At every tenth presented frame
(`requestVideoFrameCallback`) the page notes its expected display time minus the
program date-time of that frame (hls.js's `playingDate`, moved to the frame's media
time): the time from the frame's arrival at the server to its display. The server's
program date-time is the wall clock at which the first keyframe arrived, moved along
by the stream's timestamps, so the time from ffmpeg's launch to that arrival (the first
segment's date minus the launch) is added to give glass-to-glass: an upper bound,
since ffmpeg emits frame n at or after launch + n / 30 s. hls.js's own `latency`
(its estimate from the playlist's edge) is shown beside it.

Viewers: one `streamcart serve` gets a pre-encoded 720p30 2 Mbps stream (`-c copy`,
B-frames, a keyframe a second). First the bench records `--record` seconds of it as a
player sees it: each blocking-reload playlist and each new part, into a folder. Then,
for each N and each configuration (the order reversed at every other N), N simulated
LL-HLS players in `--load-processes` processes (`hls_players.py`) play for
`--window` seconds after `--warmup`: a blocking playlist reload (`_HLS_msn`,
`_HLS_part`) for the next part, then every new part it lists, as hls.js does at the
live edge.

- `app`: the players ask the app directly;
- `nginx-cache`: they ask nginx with deploy/nginx.conf's HLS cache and `location /hls/`
  (built as tests/test_hls_shoppable.py builds it), which asks the app;
- `nginx-disk`: nginx serves the recorded playlists and parts as files; each player
  fetches them in the recorded order at the recorded pace (the same requests and bytes,
  no app behind).

CPU over the window comes from /proc: the app and each nginx (one worker, no master),
above their idle (the stream, nobody watching) measured just before. CPU per viewer is
that divided by N; viewers per core what is left of a core divided by it, given only
when the players kept up (media fetched at least 95% of real time). With `--pin` the
servers and ffmpeg run on CPU 0 and the players on CPU 1. Prints two tables, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import harness
from checkout import git_commit
from hls_players import RETRY_SECONDS, listed_parts
from playback import scheduled_session, until_live
from socketio_fanout import render_columns
from yarl import URL

# hls.js, its page and nginx's HLS cache, as tested; the root first, where the app's
# packages are (bench/rtmp_ingest.py would shadow the one of that name).
sys.path.insert(0, str(harness.ROOT))
from tests.test_hls_shoppable import (
    chromium_page,
    hls_cache_config,
    installed_hls_js,
)

DEFAULT_JSON = harness.RESULTS / "hls.json"
CONFIGS = ("app", "nginx-cache", "nginx-disk")
FPS = 30
DATE_RE = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")
MIN_REALTIME = 0.95
LATENCY_TARGET_S = 2.0
IDLE_SECONDS = 3.0
SERVER_CPU, PLAYERS_CPU = 0, 1  # with --pin
PLAYERS = Path(__file__).resolve().parent / "hls_players.py"
RESULT_TIMEOUT = 20.0
MAX_VIEWERS = 400  # nginx here has 512 connections per worker
LATENCY_JS = """
async (seconds) => {
  const samples = [];
  const end = performance.now() + seconds * 1000;
  let frame = 0;
  await new Promise((done) => {
    const step = (now, meta) => {
      const date = hls.playingDate;
      if (frame++ % 10 === 0 && date) samples.push({
        display_to_pdt_ms: performance.timeOrigin + meta.expectedDisplayTime
          - (date.getTime() + (meta.mediaTime - video.currentTime) * 1000),
        hls_latency_s: hls.latency,
      });
      if (now > end) done(); else video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  });
  return { samples, errors: window.errors };
}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("latency", "viewers"),
                        default=["latency", "viewers"], help="(both)")  # fmt: skip
    parser.add_argument("--viewers", type=int, nargs="+", default=[50, 200], help="N (50 200)")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before it (3)")
    parser.add_argument("--record", type=float, default=12.0, help="seconds recorded (12)")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="sampled (15)")
    parser.add_argument("--load-processes", type=int, default=2, help="player processes (2)")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, players on 1")
    parser.add_argument(
        "--hold-back",
        type=float,
        default=None,
        help="PART-HOLD-BACK in parts (the server's default: 3)",
    )
    parser.add_argument("--label", default="", help="a note stored in the JSON")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 viewers, 5 s")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.viewers, args.window, args.warmup, args.latency_seconds = [20], 5.0, 2.0, 8.0
    problems = [
        any(not 1 <= n <= MAX_VIEWERS for n in args.viewers) and f"--viewers 1..{MAX_VIEWERS}",
        not 1 <= args.window <= 120 and "--window must be 1..120",
        not 1 <= args.warmup <= 30 and "--warmup must be 1..30",
        not 3 <= args.record <= 60 and "--record must be 3..60",
        not 3 <= args.latency_seconds <= 120 and "--latency-seconds must be 3..120",
        not 1 <= args.load_processes <= 8 and "--load-processes must be 1..8",
        args.pin and not {0, 1} <= os.sched_getaffinity(0) and "--pin needs CPUs 0 and 1",
    ]
    for problem in problems:
        if problem:
            parser.error(problem)
    return args


# --- playlists ------------------------------------------------------------------------


def first_segment_date(playlist: str) -> datetime | None:
    """The program date-time of segment 0, when the playlist still starts with it."""
    if "#EXT-X-MEDIA-SEQUENCE:0\n" not in playlist or not (found := DATE_RE.search(playlist)):
        return None
    return datetime.fromisoformat(found[1].replace("Z", "+00:00"))


# --- the server and its publisher -----------------------------------------------------


def server_settings(hold_back: float | None = None) -> dict[str, str]:
    chosen = {} if hold_back is None else {"STREAMCART_HLS_PART_HOLD_BACK": str(hold_back)}
    return chosen | {
        "STREAMCART_RTMP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_UDP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_TCP_PORT": "0",
        "STREAMCART_WEBRTC_PUBLIC_HOSTS": "127.0.0.1",
        "STREAMCART_WEBRTC_INTERFACE_CANDIDATES": "false",
        "STREAMCART_RECORD_STREAMS": "false",
    }


def encode_source(path: Path, seconds: float) -> Path:
    """720p30 2 Mbps H.264 with 2 B-frames and a keyframe a second, AAC: what the
    viewers part pushes with `-c copy`."""
    command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command += [*live_input(), "-t", f"{seconds:.0f}", *encoding(), "-f", "flv", str(path)]
    subprocess.run(command, check=True, timeout=600)
    return path


def live_input() -> list[str]:
    return [
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FPS}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    ]  # fmt: skip


def encoding() -> list[str]:
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "2",
        "-g", str(FPS), "-pix_fmt", "yuv420p", "-b:v", "2M", "-maxrate", "2M",
        "-bufsize", "2M", "-c:a", "aac", "-b:a", "128k",
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def live_server(work: Path, args: argparse.Namespace, source: Path | None):
    """A fresh server with a live session and ffmpeg publishing to it: the file
    `source` at real time, or (None) testsrc2 encoded as it is generated. Yields (the
    server, the live session id, ffmpeg's launch wall clock)."""
    settings = server_settings(args.hold_back)
    server = harness.start_server(settings, work, 0, harness.serve_command())
    publisher = None
    try:
        if args.pin:
            os.sched_setaffinity(server.pid, {SERVER_CPU})
        await harness.wait_healthy([server])
        token, live_id, key = await scheduled_session(server.url)
        rtmp = f"rtmp://127.0.0.1:{settings['STREAMCART_RTMP_PORT']}/live/{key}"
        command = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
        if source is None:
            command += ["-re", *live_input(), *encoding()]
        else:
            command += ["-re", "-i", str(source), "-c", "copy"]
        launched = time.time()
        publisher = await asyncio.create_subprocess_exec(
            *command, "-f", "flv", rtmp, stdin=asyncio.subprocess.DEVNULL
        )
        if args.pin:
            os.sched_setaffinity(publisher.pid, {SERVER_CPU})
        await until_live(server.url, live_id, token)
        yield server, live_id, launched
        harness.check_alive([server])
    finally:
        await harness.stop_show(publisher, server)


async def playlist_text(http: aiohttp.ClientSession, url: str) -> str:
    """The playlist once the app has a segment (it answers 503 until then)."""
    async with asyncio.timeout(30):
        while True:
            async with http.get(url) as response:
                if response.status == 200:
                    return await response.text()
            await asyncio.sleep(RETRY_SECONDS)


# --- glass-to-glass -------------------------------------------------------------------


async def measure_latency(args: argparse.Namespace, work: Path) -> dict:
    hls_js = await asyncio.to_thread(installed_hls_js)
    async with live_server(work / "latency", args, None) as (server, live_id, launched):
        path = f"/hls/{live_id}/index.m3u8"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            first_date = first_segment_date(await playlist_text(http, server.url + path))
        if first_date is None:
            raise RuntimeError("the playlist no longer starts at segment 0")
        ingest_ms = 1000 * (first_date.timestamp() - launched)
        async with chromium_page(URL(server.url), hls_js) as page:
            await page.goto(f"{server.url}/hls-test/?src={path}")
            await page.wait_for_function(
                "() => window.errors.length || video.currentTime > 2", polling=100, timeout=30_000
            )
            await asyncio.sleep(args.warmup)
            report = await page.evaluate(LATENCY_JS, args.latency_seconds)
    if report["errors"] or not report["samples"]:
        raise RuntimeError(f"hls.js: {report['errors'] or 'no frames presented'}")
    shown = sorted(s["display_to_pdt_ms"] for s in report["samples"])
    estimates = sorted(s["hls_latency_s"] for s in report["samples"])
    p50, p95 = harness.percentile(shown, 50), harness.percentile(shown, 95)
    return {
        "samples": len(shown),
        "launch_to_first_segment_ms": round(ingest_ms),
        "arrival_to_display_ms": {"p50": round(p50), "p95": round(p95), "max": round(shown[-1])},
        "glass_to_glass_ms": {"p50": round(p50 + ingest_ms), "p95": round(p95 + ingest_ms)},
        "hls_js_latency_s": {
            "p50": round(harness.percentile(estimates, 50), 2),
            "p95": round(harness.percentile(estimates, 95), 2),
        },
        "target_s": LATENCY_TARGET_S,
        "target_met": (p95 + ingest_ms) / 1000 < LATENCY_TARGET_S,
    }


# --- the viewers part ---------------------------------------------------------------------


async def record(http: aiohttp.ClientSession, base: str, seconds: float) -> tuple[list, dict]:
    """`seconds` of the stream as a live player sees it: each blocking reload's playlist
    (as `pl-<k>.m3u8`) and the new parts it lists. (The steps in order, the files.)"""
    steps: list[dict] = []
    files: dict[str, bytes] = {}
    last = listed_parts(await playlist_text(http, f"{base}index.m3u8"))[-1][:2]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        query = f"?_HLS_msn={last[0]}&_HLS_part={last[1] + 1}"
        async with http.get(f"{base}index.m3u8{query}") as response:
            text = await response.text()
        step = {"playlist": f"pl-{len(steps)}.m3u8", "parts": []}
        for msn, index, uri, duration in listed_parts(text):
            if (msn, index) > last:
                async with http.get(base + uri) as response:
                    files[uri] = await response.read()
                step["parts"].append((uri, duration))
                last = (msn, index)
        files[step["playlist"]] = text.encode()
        steps.append(step)
    return steps, files


def write_files(folder: Path, files: dict[str, bytes | str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


def disk_config(port: int, folder: Path) -> str:
    """nginx serving `folder` as files, set up as the cache's nginx is (one worker)."""
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {folder / "body"};
    server {{
        listen 127.0.0.1:{port};
        location /hls/ {{ root {folder / "files"}; add_header Cache-Control "max-age=1"; }}
    }}
}}
"""


@contextlib.asynccontextmanager
async def nginx(folder: Path, config: str, port: int, pin: bool):
    """nginx with `config` (one process); yields its pid once it listens."""
    binary = shutil.which("nginx")
    if binary is None:
        raise SystemExit("nginx is not installed (Debian: nginx-light)")
    await asyncio.to_thread(write_files, folder, {"nginx.conf": config})
    process = await asyncio.create_subprocess_exec(
        binary, "-p", str(folder), "-c", str(folder / "nginx.conf"),
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        if pin:
            os.sched_setaffinity(process.pid, {SERVER_CPU})
        async with asyncio.timeout(10):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"nginx: {(await process.stderr.read()).decode()}")
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(harness.HOST, port)
                    writer.close()
                    break
                await asyncio.sleep(0.05)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def run_players(
    args: argparse.Namespace, work: Path, base: str, viewers: int, steps: list, pids: list[int]
) -> dict:
    """The players, split over the load processes, started once all of them are ready;
    the CPU of `pids` and of the players over the window."""
    shares = [viewers // args.load_processes + (i < viewers % args.load_processes)
              for i in range(args.load_processes)]  # fmt: skip
    processes = []
    try:
        for index, share in enumerate(s for s in shares if s):
            path = work / f"players-{index}.json"
            config = {"base": base, "viewers": share, "steps": steps}
            await asyncio.to_thread(path.write_text, json.dumps(config))
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(PLAYERS), str(path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            if args.pin:
                os.sched_setaffinity(process.pid, {PLAYERS_CPU})
            processes.append(process)
        for index, process in enumerate(processes):
            await harness.read_phase(process, f"players {index}", "ready")
        start_at = time.time() + args.warmup
        stop_at = start_at + args.window
        window = json.dumps({"start_at": start_at, "stop_at": stop_at}).encode() + b"\n"
        for process in processes:
            process.stdin.write(window)
            await process.stdin.drain()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        load_pids = [p.pid for p in processes]
        before = harness.cpu_sample([*pids, *load_pids])
        await asyncio.sleep(max(0.0, stop_at - time.time()))
        usage = harness.cpu_usage(before, harness.cpu_sample([*pids, *load_pids]))
        async with asyncio.timeout(RESULT_TIMEOUT):
            tallies = [
                await harness.read_phase(p, f"players {i}", "result")
                for i, p in enumerate(processes)
            ]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            await process.wait()
    per = usage["per_server_pct"]
    return {
        "servers_pct": per[: len(pids)],
        "players_pct": round(sum(per[len(pids) :]), 1),
        "machine_pct": usage["machine_pct"],
        **{key: sum(t[key] for t in tallies) for key in ("requests", "errors", "bytes")},
        "media_seconds": sum(t["media_seconds"] for t in tallies),
    }


async def idle(pids: list[int]) -> list[float]:
    before = harness.cpu_sample(pids)
    await asyncio.sleep(IDLE_SECONDS)
    return harness.cpu_usage(before, harness.cpu_sample(pids))["per_server_pct"]


def summarise(config: str, viewers: int, window: float, idle_pct: list, result: dict) -> dict:
    """CPU above idle per viewer (app and nginx together), viewers per core when the
    players kept up with real time."""
    used = [max(0.0, busy - quiet) for busy, quiet in zip(result["servers_pct"], idle_pct,
                                                            strict=True)]  # fmt: skip
    per_viewer = sum(used) / viewers
    realtime = result["media_seconds"] / (viewers * window)
    base = idle_pct[0] if config != "nginx-disk" else 0.0
    per_core = None
    if realtime >= MIN_REALTIME and per_viewer > 0:
        per_core = round((100 - base) / per_viewer)
    return {
        "config": config,
        "viewers": viewers,
        "servers_pct": result["servers_pct"],
        "idle_pct": idle_pct,
        "cpu_pct_per_viewer": round(per_viewer, 3),
        "viewers_per_core": per_core,
        "requests_per_s": round(result["requests"] / window),
        "errors": result["errors"],
        "mbps": round(8 * result["bytes"] / window / 1e6, 1),
        "realtime_pct": round(100 * realtime, 1),
        "players_pct": result["players_pct"],
        "machine_pct": result["machine_pct"],
    }


async def measure_viewers(args: argparse.Namespace, work: Path) -> list[dict]:
    runs_seconds = len(args.viewers) * len(args.configs) * (IDLE_SECONDS + args.warmup + 2)
    seconds = args.record + runs_seconds + len(args.viewers) * len(args.configs) * args.window
    print(f"encoding {seconds + 30:.0f} s of source...", flush=True)
    source = await asyncio.to_thread(encode_source, work / "source.flv", seconds + 30)
    runs = []
    async with live_server(work / "viewers", args, source) as (server, live_id, _):
        app_base = f"{server.url}/hls/{live_id}/"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            print(f"recording {args.record:.0f} s of the stream for nginx-disk...", flush=True)
            steps, files = await record(http, app_base, args.record)
        await asyncio.to_thread(write_files, work / "files" / "hls" / live_id, files)
        cache_port, disk_port = harness.free_port(), harness.free_port()
        cache_conf = hls_cache_config(server.port, cache_port, work / "nginx-cache")
        async with (
            nginx(work / "nginx-cache", cache_conf, cache_port, args.pin) as cache_pid,
            nginx(work, disk_config(disk_port, work), disk_port, args.pin) as disk_pid,
        ):
            setups = {
                "app": (app_base, [server.pid], []),
                "nginx-cache": (f"http://{harness.HOST}:{cache_port}/hls/{live_id}/",
                                [server.pid, cache_pid], []),
                "nginx-disk": (f"http://{harness.HOST}:{disk_port}/hls/{live_id}/",
                               [disk_pid], steps),
            }  # fmt: skip
            for index, viewers in enumerate(args.viewers):
                order = args.configs if index % 2 == 0 else args.configs[::-1]
                for config in order:
                    base, pids, recorded = setups[config]
                    print(f"{config}, {viewers} viewers", flush=True)
                    quiet = await idle(pids)
                    result = await run_players(args, work, base, viewers, recorded, pids)
                    harness.check_alive([server])
                    runs.append(summarise(config, viewers, args.window, quiet, result))
    return runs


# --- figures --------------------------------------------------------------------------


def latency_table(latency: dict) -> str:
    rows = [
        ("samples (every 10th presented frame)", str(latency["samples"])),
        ("ffmpeg launch -> first segment's date", f"{latency['launch_to_first_segment_ms']} ms"),
        ("arrival at the server -> display, p50 / p95",
         "{p50} / {p95} ms".format(**latency["arrival_to_display_ms"])),
        ("glass-to-glass (upper bound), p50 / p95",
         "{p50} / {p95} ms".format(**latency["glass_to_glass_ms"])),
        ("hls.js latency estimate, p50 / p95",
         "{p50} / {p95} s".format(**latency["hls_js_latency_s"])),
        (f"target < {LATENCY_TARGET_S:g} s (p95)", "met" if latency["target_met"] else "not met"),
    ]  # fmt: skip
    return harness.render_table("LL-HLS in Chromium (hls.js, 500 ms parts, 1 s segments)", rows)


def viewers_table(runs: list[dict]) -> str:
    header = ("config", "N", "CPU % (app, nginx)", "idle %", "CPU %/viewer", "viewers/core",
              "req/s", "errors", "Mbps", "realtime %", "players %", "machine %")  # fmt: skip
    rows = [
        (
            r["config"],
            str(r["viewers"]),
            ", ".join(f"{v:.1f}" for v in r["servers_pct"]),
            ", ".join(f"{v:.1f}" for v in r["idle_pct"]),
            f"{r['cpu_pct_per_viewer']:.3f}",
            f"{r['viewers_per_core']:,}" if r["viewers_per_core"] else "-",
            f"{r['requests_per_s']:,}",
            str(r["errors"]),
            f"{r['mbps']:.1f}",
            f"{r['realtime_pct']:.1f}",
            f"{r['players_pct']:.0f}",
            f"{r['machine_pct']:.0f}",
        )
        for r in runs
    ]
    title = "LL-HLS players, 720p30 2 Mbps, 500 ms parts (CPU in % of one core)"
    return render_columns(title, header, rows)


async def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="streamcart-hls-") as scratch:
        work = Path(scratch)
        latency = await measure_latency(args, work) if "latency" in args.parts else None
        runs = await measure_viewers(args, work) if "viewers" in args.parts else []
    return {"latency": latency, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        figures = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted: servers, nginx and players stopped", file=sys.stderr)
        return 130
    if figures["latency"]:
        print(latency_table(figures["latency"]))
    if figures["runs"]:
        print(viewers_table(figures["runs"]))
    harness.write_json(
        args.json,
        {
            "benchmark": "hls",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "label": args.label,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "config": {
                "window_s": args.window,
                "warmup_s": args.warmup,
                "pinned": args.pin,
                "load_processes": args.load_processes,
            },
            **figures,
        },
    )
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
