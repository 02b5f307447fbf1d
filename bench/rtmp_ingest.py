"""RTMP ingest cost: server CPU per 3 Mbps publisher, N ffmpeg publishers at once.

    .venv/bin/python bench/rtmp_ingest.py [--publishers 30] [--duration 20] [--no-uvloop]

A 720p30 H.264 (libx264 ultrafast, no B-frames, ~3 Mbps) + AAC file is encoded once;
N `ffmpeg -re -i FILE -c copy -f flv` publishers then push it at real time to an
`RtmpServer` running in a separate process (this script with `--serve`), whose sinks
only count. Server CPU comes from /proc over the measured window. A publisher is
"kept" when its ffmpeg is still running at the end of the window and its sink received
at least 90% of the frames sent meanwhile. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

TARGET_PCT_PER_PUBLISHER = 0.5
FPS = 30
DEFAULT_JSON = harness.RESULTS / "rtmp_ingest.json"
READY_TIMEOUT = 20.0


# --- the server process -------------------------------------------------------------


def _server_class() -> type:
    """`RtmpServer`, imported with this script's directory off `sys.path`: this file is
    named like the package, and the script's directory comes first there."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from rtmp_ingest import RtmpServer

    return RtmpServer


class CountingSink:
    """Counts what one publisher delivered (the cheapest possible consumer)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.frames = 0
        self.bytes = 0
        self.closed = False

    def on_metadata(self, metadata: dict) -> None:
        pass

    def on_audio(self, timestamp_ms: int, payload: bytes) -> None:
        self.bytes += len(payload)

    def on_video(self, timestamp_ms: int, payload: bytes) -> None:
        self.frames += payload[1] == 1
        self.bytes += len(payload)

    def close(self) -> None:
        self.closed = True


def serve(port_file: Path, stats_file: Path) -> None:
    """Run the server until SIGTERM or SIGUSR1; each writes the per-sink counts."""
    sinks: list[CountingSink] = []

    async def authorize(app: str, key: str) -> CountingSink:
        sink = CountingSink(key)
        sinks.append(sink)
        return sink

    def write_stats() -> None:
        stats = [{"key": s.key, "frames": s.frames, "bytes": s.bytes} for s in sinks]
        stats_file.write_text(json.dumps(stats))

    async def main() -> None:
        server = _server_class()(harness.HOST, 0, authorize, idle_timeout=60.0)
        await server.start()
        port_file.write_text(str(server.port))  # noqa: ASYNC240 (once, at start-up)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, write_stats)
        await stop.wait()
        write_stats()
        await server.stop()

    runner_kwargs = {}
    if "--no-uvloop" not in sys.argv:
        import uvloop

        runner_kwargs["loop_factory"] = uvloop.new_event_loop
    with asyncio.Runner(**runner_kwargs) as runner:
        runner.run(main())


# --- the load -----------------------------------------------------------------------


def encode_source(path: Path, seconds: float) -> None:
    """The 720p30 ~3 Mbps H.264 + AAC file every publisher pushes with -c copy."""
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FPS}",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
            "-g", str(2 * FPS), "-b:v", "3M", "-maxrate", "3M", "-bufsize", "3M",
            "-c:a", "aac", "-b:a", "128k",
            "-f", "flv", str(path),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip


def start_publisher(source: Path, port: int, key: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-i", str(source), "-c", "copy", "-f", "flv",
            f"rtmp://{harness.HOST}:{port}/live/{key}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_for_file(path: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError):
            if text := path.read_text():
                return text
        time.sleep(0.05)
    raise RuntimeError(f"{path.name} not written after {READY_TIMEOUT:.0f} s")


def read_stats(server: subprocess.Popen, stats_file: Path) -> dict[str, int]:
    """Frames per stream key, asked from the running server."""
    stats_file.unlink(missing_ok=True)
    server.send_signal(signal.SIGUSR1)
    return {s["key"]: s["frames"] for s in json.loads(wait_for_file(stats_file, server))}


def run(args: argparse.Namespace, work: Path) -> dict:
    source = work / "source.flv"
    encode_source(source, args.warmup + args.duration + 10)
    size_bits = source.stat().st_size * 8
    source_seconds = args.warmup + args.duration + 10
    port_file, stats_file = work / "port", work / "stats.json"
    command = [sys.executable, __file__, "--serve", str(port_file), str(stats_file)]
    if not args.uvloop:
        command.append("--no-uvloop")
    server = subprocess.Popen(command, cwd=harness.ROOT)
    publishers: list[subprocess.Popen] = []
    try:
        port = int(wait_for_file(port_file, server))
        keys = [f"bench-{i}" for i in range(args.publishers)]
        publishers = [start_publisher(source, port, key) for key in keys]
        time.sleep(args.warmup)
        frames_before = read_stats(server, stats_file)
        before = harness.cpu_sample([server.pid])
        time.sleep(args.duration)
        after = harness.cpu_sample([server.pid])
        frames_after = read_stats(server, stats_file)
        window = after.wall - before.wall
        running = [p.poll() is None for p in publishers]
        delivered = [frames_after.get(k, 0) - frames_before.get(k, 0) for k in keys]
        kept = sum(
            1
            for alive, frames in zip(running, delivered, strict=True)
            if alive and frames >= 0.9 * FPS * window
        )
    finally:
        for publisher in publishers:
            publisher.terminate()
        for publisher in publishers:
            try:
                publisher.wait(10)
            except subprocess.TimeoutExpired:
                publisher.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    usage = harness.cpu_usage(before, after)
    per_publisher = 100 * (after.servers[0] - before.servers[0]) / window / args.publishers
    return {
        "publishers": args.publishers,
        "kept": kept,
        "source_mbps": round(size_bits / source_seconds / 1e6, 2),
        "event_loop": "uvloop" if args.uvloop else "asyncio",
        "duration_s": round(window, 1),
        "frames_per_publisher_min": min(delivered),
        "server_cpu_pct": usage["servers_pct"],
        "server_cpu_pct_per_publisher": round(per_publisher, 3),
        "target_pct_per_publisher": TARGET_PCT_PER_PUBLISHER,
        "machine_pct": usage["machine_pct"],
        "machine_capacity_pct": usage["machine_capacity_pct"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        serve(Path(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description="Server CPU per RTMP publisher.")
    parser.add_argument("--publishers", type=int, default=30, help="ffmpeg publishers (30)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before (3)")
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio loop"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="output file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` cleans up
    if not 1 <= args.publishers <= 200 or not 1 <= args.duration <= 600:
        parser.error("--publishers must be 1..200 and --duration 1..600")
    with tempfile.TemporaryDirectory(prefix="rtmp-bench-") as work:
        figures = run(args, Path(work))
    rows = [
        ("publishers kept", f"{figures['kept']}/{figures['publishers']}"),
        ("source bitrate", f"{figures['source_mbps']} Mbps"),
        ("event loop", figures["event_loop"]),
        ("measured", f"{figures['duration_s']} s"),
        ("min frames per publisher", str(figures["frames_per_publisher_min"])),
        ("server CPU", f"{figures['server_cpu_pct']}% of a core"),
        ("server CPU per publisher", f"{figures['server_cpu_pct_per_publisher']}%"),
        ("target per publisher", f"<= {TARGET_PCT_PER_PUBLISHER}%"),
        ("machine", f"{figures['machine_pct']}% of {figures['machine_capacity_pct']}%"),
    ]
    print(harness.render_table("RTMP ingest", rows))
    harness.write_json(args.json, figures)
    ok = figures["kept"] == figures["publishers"]
    return 0 if ok and figures["server_cpu_pct_per_publisher"] <= TARGET_PCT_PER_PUBLISHER else 1


if __name__ == "__main__":
    sys.exit(main())
