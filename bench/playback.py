"""Playback as a viewer's browser sees it: headless Chromium watches a 1080p60 stream.

For each case, a fresh `streamcart serve` (embedded defaults) gets an OBS-like stream
from the ffmpeg CLI (an encoded file pushed in real time, `-c copy`), and Chromium plays
it over WHEP. Over `--seconds` after a warm-up it reports, from its own `getStats()`:
frames decoded per second, freezes (count and total length), frames dropped, packets
lost; and the server's CPU. Cases:

- `passthrough`: 1080p60 6 Mbps without B-frames: what the server passes through
  untouched (each keyframe is a burst of several hundred packets);
- `bframes`: OBS's default x264 settings (High, 2 B-frames): what the B-frame fallback
  makes of it (target: at least 29 fps decoded, at most one core of server CPU).

Each case runs with the server's pacing off and on (`--pacing`), alternating which goes
first. Everything runs inside a network namespace of its own (the benchmark re-runs
itself there as root), so the only network is that namespace's loopback; with
`--limit-mbps` the UDP on it (the WebRTC media) goes through a rate limit with a
shallow queue (`tc` htb and bfifo), as through a viewer's access link, which a keyframe
sent as one burst can overrun.

    .venv/bin/python bench/playback.py                      # both cases, pacing off and on
    .venv/bin/python bench/playback.py --limit-mbps 10      # through a 10 Mbit/s link
    .venv/bin/python bench/playback.py --cases bframes --pacing on --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import harness
from playwright.async_api import async_playwright

sys.path.append(str(harness.ROOT))  # Chromium's flags, as the tests launch it
from tests.chromium_support import CHROMIUM, CHROMIUM_ARGS

INSIDE = "STREAMCART_PLAYBACK_NAMESPACE"
DEFAULT_JSON = harness.RESULTS / "playback.json"
CASES = {"passthrough": 0, "bframes": 2}  # the case and its B-frames

WATCH_JS = """
async (path) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const video = document.createElement("video");
  video.autoplay = true; video.muted = true; document.body.appendChild(video);
  pc.ontrack = (e) => { video.srcObject = e.streams[0] ?? new MediaStream([e.track]); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => pc.iceGatheringState === "complete" ? done() :
    pc.addEventListener("icegatheringstatechange",
      () => pc.iceGatheringState === "complete" && done()));
  const response = await fetch(path, { method: "POST",
    headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
  const body = await response.text();
  if (response.status !== 201) return { status: response.status, body };
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  window.peer = pc;
  return { status: response.status };
}
"""
STATS_JS = """
async () => {
  const out = { state: window.peer.connectionState };
  (await window.peer.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") Object.assign(out, {
      framesDecoded: s.framesDecoded ?? 0, framesDropped: s.framesDropped ?? 0,
      framesReceived: s.framesReceived ?? 0, freezeCount: s.freezeCount ?? 0,
      totalFreezesDuration: s.totalFreezesDuration ?? 0, packetsLost: s.packetsLost ?? 0,
      packetsReceived: s.packetsReceived ?? 0, width: s.frameWidth ?? 0,
      height: s.frameHeight ?? 0, jitterBufferDelay: s.jitterBufferDelay ?? 0,
      jitterBufferEmittedCount: s.jitterBufferEmittedCount ?? 0 });
  });
  return out;
}
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="passthrough,bframes", help="which cases (both)")
    parser.add_argument("--pacing", default="both", choices=["both", "on", "off"])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (20)")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before it (4)")
    parser.add_argument("--size", default="1920x1080", help="source size (1920x1080)")
    parser.add_argument("--fps", type=int, default=60, help="source frame rate (60)")
    parser.add_argument("--bitrate", default="6M", help="source video bitrate (6M)")
    parser.add_argument("--bufsize", default="12M", help="its rate control buffer (12M)")
    parser.add_argument(
        "--limit-mbps", type=float, default=0.0, help="shape the loopback (0: unshaped)"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    return parser.parse_args(argv)


def run_in_namespace(argv: list[str], limit_mbps: float) -> int:
    """Re-run this benchmark inside a fresh network namespace (needs root)."""
    name = f"streamcart-playback-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        if limit_mbps > 0:
            shape_udp(name, limit_mbps)
        env = {**os.environ, INSIDE: name}
        command = ["ip", "netns", "exec", name, sys.executable, __file__, *argv]
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def shape_udp(namespace: str, limit_mbps: float) -> None:
    """The viewer's access link: UDP on the namespace's loopback (the WebRTC media) is
    limited to `limit_mbps` behind a queue of 50 ms of it (a home router's is that
    shallow); TCP (RTMP ingest, HTTP) is left alone."""
    tc = ["tc", "-n", namespace]
    rate = f"{limit_mbps}mbit"
    queue = str(int(limit_mbps * 1_000_000 / 8 * 0.05))
    limited = ["rate", rate, "ceil", rate, "burst", "16k"]
    udp = ["u32", "match", "ip", "protocol", "17", "0xff", "flowid", "1:10"]
    for command in (
        ["qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20"],
        ["class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", *limited],
        ["class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit"],
        ["qdisc", "add", "dev", "lo", "parent", "1:10", "handle", "10:", "bfifo", "limit", queue],
        ["filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", *udp],
    ):
        subprocess.run([*tc, *command], check=True, capture_output=True)


def encode_source(path: Path, args: argparse.Namespace, bframes: int, seconds: float) -> Path:
    """An OBS-like stream in a file, encoded once (faster than real time needs)."""
    if path.exists():
        return path
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    # a camera's grain (the same each frame): keyframes of 250 - 300 kB at 1080p 6 Mbps,
    # as a real scene's, where a bare test pattern's are 30 kB
    picture = f"testsrc2=size={args.size}:rate={args.fps},noise=alls=30:allf=u"
    command += ["-f", "lavfi", "-i", picture]
    command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    command += ["-t", str(seconds), "-c:v", "libx264", "-preset", "superfast"]
    command += ["-profile:v", "high", "-bf", str(bframes), "-g", str(args.fps * 2)]
    command += ["-b:v", args.bitrate, "-maxrate", args.bitrate, "-bufsize", args.bufsize]
    command += ["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-ar", "48000"]
    command += ["-f", "flv", str(path)]
    subprocess.run(command, check=True, timeout=600)
    return path


async def scheduled_session(url: str) -> tuple[str, str, str]:
    """A seller's scheduled live session, over REST: (token, session id, stream key)."""
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=30)) as http:
        auth, shop = await harness.seller_with_shop(http)
        session = {
            "shop_id": shop["id"],
            "title": "Playback",
            "scheduled_at": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        }
        live = await harness.expect_json(
            await http.post("/api/live-sessions", json=session, headers=auth), 201
        )
    return auth["Authorization"].removeprefix("Bearer "), live["id"], live["stream"]["stream_key"]


async def until_live(url: str, live_id: str, token: str) -> dict:
    """Wait until the stream is live and its health report has video; the report."""
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with asyncio.timeout(30):
            while True:
                response = await http.get(f"/api/live-sessions/{live_id}/health", headers=auth)
                if response.status == 200 and (report := await response.json())["width"]:
                    return report
                await asyncio.sleep(0.2)


async def health(url: str, live_id: str, token: str) -> dict:
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=5)) as http:
        return await harness.expect_json(
            await http.get(f"/api/live-sessions/{live_id}/health", headers=auth), 200
        )


async def watch(url: str, live_id: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """Chromium's video stats at the start and the end of the measured window."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}/healthz")
            reply = await page.evaluate(WATCH_JS, f"/api/live-sessions/{live_id}/whep")
            if reply["status"] != 201:
                raise RuntimeError(f"WHEP: {reply}")
            await asyncio.sleep(args.warmup)
            first = {**await page.evaluate(STATS_JS), "at": time.monotonic()}
            await asyncio.sleep(args.seconds)
            last = {**await page.evaluate(STATS_JS), "at": time.monotonic()}
            return first, last
        finally:
            await browser.close()


async def run_case(
    args: argparse.Namespace, work: Path, case: str, pacing: str, source: Path
) -> dict:
    settings = {
        "STREAMCART_RTMP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_UDP_PORT": str(harness.free_port()),
        "STREAMCART_WEBRTC_TCP_PORT": "0",
        "STREAMCART_WEBRTC_PUBLIC_HOSTS": "127.0.0.1",
        "STREAMCART_WEBRTC_INTERFACE_CANDIDATES": "false",
        "STREAMCART_WEBRTC_PACING": "true" if pacing == "on" else "false",
        "STREAMCART_RECORD_STREAMS": "false",
    }
    server = harness.start_server(settings, work / f"{case}-{pacing}", 0, harness.serve_command())
    publisher = None
    try:
        await harness.wait_healthy([server])
        token, live_id, key = await scheduled_session(server.url)
        rtmp = f"rtmp://127.0.0.1:{settings['STREAMCART_RTMP_PORT']}/live/{key}"
        publisher = await asyncio.create_subprocess_exec(
            *["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(source)],
            *["-c", "copy", "-f", "flv", rtmp],
            stdin=asyncio.subprocess.DEVNULL,
        )
        await until_live(server.url, live_id, token)
        watching = asyncio.create_task(watch(server.url, live_id, args))
        await asyncio.sleep(args.warmup)
        cpu_start, started = harness.process_cpu_seconds(server.pid), time.monotonic()
        first, last = await watching
        cpu_end, ended = harness.process_cpu_seconds(server.pid), time.monotonic()
        report = await health(server.url, live_id, token)
        harness.check_alive([server])
    finally:
        await harness.stop_show(publisher, server)
    seconds = last["at"] - first["at"]
    return {
        "case": case,
        "pacing": pacing,
        "seconds": round(seconds, 1),
        "fps_decoded": round((last["framesDecoded"] - first["framesDecoded"]) / seconds, 1),
        "freezes": last["freezeCount"] - first["freezeCount"],
        "freeze_s": round(last["totalFreezesDuration"] - first["totalFreezesDuration"], 2),
        "frames_dropped": last["framesDropped"] - first["framesDropped"],
        "packets_lost": last["packetsLost"] - first["packetsLost"],
        "jitter_buffer_ms": round(
            1000
            * (last["jitterBufferDelay"] - first["jitterBufferDelay"])
            / max(1, last["jitterBufferEmittedCount"] - first["jitterBufferEmittedCount"]),
            1,
        ),
        "size": f"{last['width']}x{last['height']}",
        "server_cpu_pct": round(100 * (cpu_end - cpu_start) / (ended - started), 1),
        "state": last["state"],
        "webrtc_video": report.get("webrtc_video"),
        "server_dropped_frames": report.get("dropped_frames"),
    }


def table(runs: list[dict], limit_mbps: float) -> str:
    link = f"loopback shaped to {limit_mbps:g} Mbit/s" if limit_mbps else "loopback, unshaped"
    rows = [
        (
            f"{r['case']} / pacing {r['pacing']}",
            f"{r['fps_decoded']} fps {r['size']}, {r['freezes']} freezes ({r['freeze_s']} s), "
            f"{r['frames_dropped']} dropped, {r['packets_lost']} lost, "
            f"jitter buffer {r['jitter_buffer_ms']} ms, server CPU {r['server_cpu_pct']}%",
        )
        for r in runs
    ]
    return harness.render_table(f"Chromium playback ({link})", rows)


async def run(args: argparse.Namespace) -> list[dict]:
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {sorted(unknown)}")
    pacings = ["off", "on"] if args.pacing == "both" else [args.pacing]
    runs = []
    with tempfile.TemporaryDirectory(prefix="playback-") as scratch:
        work = Path(scratch)
        length = args.warmup * 2 + args.seconds + 10
        for index, case in enumerate(cases):
            source = encode_source(work / f"{case}.flv", args, CASES[case], length)
            order = pacings if index % 2 == 0 else pacings[::-1]
            for pacing in order:
                print(f"{case}, pacing {pacing}...", flush=True)
                runs.append(await run_case(args, work, case, pacing, source))
    return runs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.environ.get(INSIDE) is None:
        return run_in_namespace(argv, args.limit_mbps)
    runs = asyncio.run(run(args))
    print(table(runs, args.limit_mbps))
    harness.write_json(
        args.json,
        {
            "bench": "playback",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "limit_mbps": args.limit_mbps,
            "source": {
                "size": args.size,
                "fps": args.fps,
                "bitrate": args.bitrate,
                "bufsize": args.bufsize,
            },
            "runs": runs,
        },
    )
    print(f"JSON: {args.json}")
    print(json.dumps({"targets": targets(runs)}))
    return 0


def targets(runs: list[dict]) -> dict:
    """The B-frame case's targets: at least 29 fps decoded, at most a core of CPU."""
    return {
        f"bframes/pacing {r['pacing']}": {
            "fps >= 29": r["fps_decoded"] >= 29,
            "server CPU <= 100%": r["server_cpu_pct"] <= 100,
        }
        for r in runs
        if r["case"] == "bframes"
    }


if __name__ == "__main__":
    raise SystemExit(main())
