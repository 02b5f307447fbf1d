"""The simulated LL-HLS players of `hls.py`, one process of many players:

    python bench/hls_players.py CONFIG.json

Light on imports, so it starts at once. It prints `{"phase": "ready"}`, reads the
window (`{"start_at": ..., "stop_at": ...}`, wall clock) on stdin, plays until its end
and prints what its players did inside it. Config: `base` (the stream's folder URL,
ending in `/`), `viewers`, and `steps` (empty: play live with blocking reloads; else
the recorded playlists and parts to fetch in order at their pace, from files).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

import aiohttp

PART_RE = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="(part(\d+)\.(\d+)\.m4s)"')
REQUEST_TIMEOUT = 10.0
RETRY_SECONDS = 0.2
MAX_STEPS = 1_000_000


def listed_parts(playlist: str) -> list[tuple[int, int, str, float]]:
    """(msn, part index, URI, duration) of every EXT-X-PART, in order."""
    return [(int(m), int(i), uri, float(d)) for d, uri, m, i in PART_RE.findall(playlist)]


class Tally:
    """What one process's players did inside the window."""

    def __init__(self, start_at: float, stop_at: float) -> None:
        self.start_at, self.stop_at = start_at, stop_at
        self.requests = self.errors = self.bytes = 0
        self.media_seconds = 0.0

    def note(self, size: int, ok: bool, media_seconds: float = 0.0) -> None:
        if self.start_at <= time.time() <= self.stop_at:
            self.requests += 1
            self.errors += not ok
            self.bytes += size
            self.media_seconds += media_seconds if ok else 0.0

    def figures(self) -> dict:
        return {"requests": self.requests, "errors": self.errors, "bytes": self.bytes,
                "media_seconds": self.media_seconds}  # fmt: skip


async def fetch(
    http: aiohttp.ClientSession, url: str, tally: Tally, media_seconds: float = 0.0
) -> bytes | None:
    """The body of `url`, or None (counted as an error)."""
    try:
        async with http.get(url) as response:
            body = await response.read()
            ok = response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        body, ok = b"", False
    tally.note(len(body), ok, media_seconds)
    return body if ok else None


async def live_player(http: aiohttp.ClientSession, base: str, tally: Tally) -> None:
    """Joins at the live edge, then a blocking reload for the part after the last one
    fetched and every new part it lists, as hls.js does at the live edge."""
    last = None
    while time.time() < tally.stop_at:
        query = "" if last is None else f"?_HLS_msn={last[0]}&_HLS_part={last[1] + 1}"
        body = await fetch(http, f"{base}index.m3u8{query}", tally)
        parts = listed_parts(body.decode()) if body else []
        if not parts:
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if last is None:
            last = parts[-1][:2]
            continue
        for msn, index, uri, duration in parts:
            if (msn, index) > last:
                await fetch(http, base + uri, tally, duration)
                last = (msn, index)


async def disk_player(
    http: aiohttp.ClientSession, base: str, steps: list[dict], tally: Tally
) -> None:
    """The recorded playlists and parts in order (round again at the end), each step
    when its recorded time comes."""
    started, elapsed = time.monotonic(), 0.0
    for number in range(MAX_STEPS):
        if time.time() >= tally.stop_at:
            return
        step = steps[number % len(steps)]
        await fetch(http, base + step["playlist"], tally)
        for uri, duration in step["parts"]:
            await fetch(http, base + uri, tally, duration)
            elapsed += duration
        await asyncio.sleep(max(0.0, started + elapsed - time.monotonic()))


async def play(config: dict, window: dict) -> dict:
    tally = Tally(window["start_at"], window["stop_at"])
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as http:

        def player():
            if config["steps"]:
                return disk_player(http, config["base"], config["steps"], tally)
            return live_player(http, config["base"], tally)

        await asyncio.gather(*(player() for _ in range(config["viewers"])))
    return tally.figures()


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps({"phase": "ready"}), flush=True)
    window = json.loads(sys.stdin.readline())
    print(json.dumps({"phase": "result", **asyncio.run(play(config, window))}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
