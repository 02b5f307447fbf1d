"""Shoppable HLS: pins and flash sales as EXT-X-DATERANGE tags, in the live playlist's
source and in the VOD playlist of a recording, on the video's clock."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, Route, async_playwright
from yarl import URL

from live.analytics.routes import LIVE_STATS
from live.http.metrics import METRICS
from live.http.system import BACKENDS
from live.streaming.hls_timeline import FLASH_CLASS, PIN_CLASS, SCHEDULED_CLASS, HlsTimeline
from live.streaming.routes import HLS_TIMELINE, STREAM_OUTPUTS
from media.hls.vod import scan
from media.recording import MP4_OPTIONS
from tests.backends import missing
from tests.chromium_support import CHROMIUM, CHROMIUM_ARGS
from tests.commerce_support import scheduled_show
from tests.hub_support import joining, open_socket
from tests.media_support import write_test_flv
from tests.rtmp_support import run_ffmpeg
from tests.test_auth import assert_problem, bearer
from tests.test_streaming import api_settings, ended_recording, eventually, push, status

LIVE_PRICE = 90_000
FLASH_PRICE = 50_000
ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
# hls.js from the npm registry, installed on first use into this ignored folder.
HLS_JS_FOLDER = ROOT / ".cache" / "hls.js"
HLS_JS = HLS_JS_FOLDER / "node_modules" / "hls.js" / "dist" / "hls.min.js"
HLS_JS_VERSION = "hls.js@1"
WAIT = 20.0
# The tiny page hls.js plays the stream in; `window.report()` is what the test reads.
PLAYER_PAGE = """<!doctype html><video muted autoplay playsinline></video>
<script src="hls.min.js"></script>
<script>
const video = document.querySelector("video");
const hls = new Hls({ lowLatencyMode: true });
window.errors = [];
hls.on(Hls.Events.ERROR, (_, data) => { if (data.fatal) window.errors.push(data.details); });
hls.loadSource(new URLSearchParams(location.search).get("src"));
hls.attachMedia(video);
window.report = () => ({
  currentTime: video.currentTime,
  latency: hls.latency,
  liveSyncPosition: hls.liveSyncPosition,
  lowLatency: hls.lowLatencyMode && (hls.levels[0]?.details?.partList?.length ?? 0) > 0,
  dateRanges: Object.keys(hls.levels[0]?.details?.dateRanges ?? {}),
  errors: window.errors,
});
</script>"""
VOD_ROUTE = "/hls/{live_session_id}/replay/{name}.m3u8"
PLAYLIST_ROUTE = "/hls/{live_session_id}/index.m3u8"
MEDIA_ROUTE = "/hls/{live_session_id}/{name}"
AUDIENCE = 50

__all__ = ["api_settings"]  # a fixture shared with the OBS end-to-end tests


@pytest.fixture
async def show(api):
    """A seller's scheduled session with one product at a live price, and its stream key."""
    return await scheduled_show(api, live_price=LIVE_PRICE)


def tags(playlist: str, name: str) -> list[dict[str, str]]:
    """The attribute lists of every `#<name>:` tag, quotes removed."""
    found = []
    for line in playlist.splitlines():
        if line.startswith(f"#{name}:"):
            attributes = ATTRIBUTE.findall(line.split(":", 1)[1])
            found.append({key: value.strip('"') for key, value in attributes})
    return found


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def start_flash(api, show: dict, countdown_seconds: int = 0) -> dict:
    response = await api.post(
        f"/api/live-sessions/{show['live']['id']}/flash-sales",
        json={
            "product_id": show["product"]["id"],
            "flash_price": FLASH_PRICE,
            "quantity": 2,
            "duration_seconds": 60,
            "countdown_seconds": countdown_seconds,
        },
        headers=bearer(show["token"]),
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_pins_and_flash_sales_become_date_ranges(api, show):
    live_id, product_id = show["live"]["id"], show["product"]["id"]
    started = await api.post(f"/api/live-sessions/{live_id}/start", headers=bearer(show["token"]))
    assert started.status == 200, await started.text()
    source = api.app[HLS_TIMELINE]
    cached = HlsTimeline(api.app[BACKENDS].sessions, api.app[LIVE_STATS], cache_seconds=3600)
    assert await source.dateranges(live_id) == await cached.dateranges(live_id) == []

    seller = await open_socket(api, show["token"])
    await seller.ok("session:join", joining(live_id))
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    await seller.ok("product:unpin", {"live_session_id": live_id})
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    flash = await start_flash(api, show)
    await seller.client.disconnect()

    ranges = await HlsTimeline(api.app[BACKENDS].sessions, api.app[LIVE_STATS], 0).dateranges(
        live_id
    )
    pins = [item for item in ranges if item.cls == PIN_CLASS]
    (sale,) = [item for item in ranges if item.cls == FLASH_CLASS]
    assert len(pins) == 2 and pins[0].start <= pins[1].start
    assert pins[0].end is not None and pins[0].end <= pins[1].start and pins[1].end is None
    assert pins[0].id != pins[1].id
    assert dict(pins[1].attributes) == {
        "PRODUCT-ID": product_id,
        "NAME": "Áo khoác",
        "PRICE": LIVE_PRICE,
    }
    assert sale.id == f"flash-{flash['id']}" and sale.end is None
    assert sale.attributes["FLASH-PRICE"] == FLASH_PRICE
    assert sale.attributes["FLASH-SALE-ID"] == flash["id"]
    ends_at = parse_time(str(sale.attributes["ENDS-AT"]))  # to the millisecond
    assert abs(ends_at - parse_time(flash["ends_at"])) < timedelta(milliseconds=1)
    assert abs(sale.start - parse_time(flash["starts_at"])) < timedelta(milliseconds=1)

    assert await cached.dateranges(live_id) == []  # still within its cache time

    ended = await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(show["token"]))
    assert ended.status == 200, await ended.text()
    closed = await HlsTimeline(api.app[BACKENDS].sessions, api.app[LIVE_STATS], 0).dateranges(
        live_id
    )
    assert all(item.end is not None for item in closed)  # ending closes the pin and the sale
    rendered = [item.render() for item in closed]
    assert all(line.startswith("#EXT-X-DATERANGE:") and "END-DATE=" in line for line in rendered)


async def test_a_flash_sale_announced_ahead_is_scheduled_until_it_starts(api, show):
    live_id = show["live"]["id"]
    started = await api.post(f"/api/live-sessions/{live_id}/start", headers=bearer(show["token"]))
    assert started.status == 200, await started.text()
    flash = await start_flash(api, show, countdown_seconds=30)
    source = HlsTimeline(api.app[BACKENDS].sessions, api.app[LIVE_STATS], 0)

    (scheduled,) = await source.dateranges(live_id)
    assert scheduled.cls == SCHEDULED_CLASS and scheduled.end is None
    assert scheduled.id == f"flash-{flash['id']}-scheduled"
    starts_at = parse_time(str(scheduled.attributes["STARTS-AT"]))
    assert abs(starts_at - parse_time(flash["starts_at"])) < timedelta(milliseconds=1)
    assert scheduled.attributes["FLASH-PRICE"] == FLASH_PRICE

    ended = await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(show["token"]))
    assert ended.status == 200, await ended.text()
    (cancelled,) = await source.dateranges(live_id)  # the same range, now with its end
    assert cancelled.id == scheduled.id and cancelled.start == scheduled.start
    assert cancelled.end is not None and scheduled.start < cancelled.end < starts_at


async def test_the_replay_is_a_vod_playlist_with_the_pins_on_its_clock(api, show, tmp_path):
    source = write_test_flv(tmp_path / "source.flv", seconds=4, gop=30, bframes=2)
    live_id, product_id = show["live"]["id"], show["product"]["id"]
    seller = await open_socket(api, show["token"])
    await seller.ok("session:join", joining(live_id))
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    await eventually(lambda: status(api, live_id), "live")
    await seller.wait_for("stream:health", lambda health: health["width"] is not None, within=20)
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    recording = await ended_recording(api, live_id, publisher, seller)
    assert recording["hls_url"].endswith(".m3u8")
    answer = await api.get(recording["hls_url"])
    assert answer.status == 200 and answer.content_type == "application/vnd.apple.mpegurl"
    assert "max-age" in answer.headers["Cache-Control"]
    playlist = await answer.text()
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U" and lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in lines
    (mapped,) = tags(playlist, "EXT-X-MAP")
    assert mapped["URI"] == recording["video_url"]
    ranges = [line.split(":", 1)[1] for line in lines if line.startswith("#EXT-X-BYTERANGE:")]
    durations = [float(line[8:-1]) for line in lines if line.startswith("#EXTINF:")]
    dates = [parse_time(line.split(":", 1)[1]) for line in lines if "PROGRAM-DATE-TIME" in line]
    assert len(ranges) == len(durations) == len(dates) >= 3
    target = int(next(line for line in lines if "TARGETDURATION" in line).split(":")[1])
    assert all(duration <= target + 0.5 for duration in durations)
    header, _, offset = mapped["BYTERANGE"].partition("@")
    position = int(header)
    assert offset == "0"
    for byterange in ranges:  # the segments tile the file after its header
        size, _, start = byterange.partition("@")
        assert int(start) == position
        position += int(size)
    video = await (await api.get(recording["video_url"])).read()
    assert position <= len(video)
    assert video[int(ranges[0].split("@")[1]) + 4 : int(ranges[0].split("@")[1]) + 8] == b"moof"

    (pin,) = tags(playlist, "EXT-X-DATERANGE")
    assert pin["CLASS"] == PIN_CLASS and pin["X-PRODUCT-ID"] == product_id
    assert pin["X-NAME"] == "Áo khoác" and pin["X-PRICE"] == str(LIVE_PRICE)
    mark = recording["timeline"][0]
    assert mark["kind"] == "pinned"
    start = parse_time(pin["START-DATE"])
    assert start - dates[0] == timedelta(milliseconds=mark["at_ms"])
    assert dates[0] <= start <= dates[-1] + timedelta(seconds=durations[-1])
    # Unpinned when the session ended, if that made it into the recording's timeline;
    # else the range ends where the recording does.
    unpinned = [entry["at_ms"] for entry in recording["timeline"] if entry["kind"] == "unpinned"]
    if unpinned:
        end = dates[0] + timedelta(milliseconds=unpinned[0])
    else:
        end = dates[-1] + timedelta(seconds=durations[-1])
    assert abs(parse_time(pin["END-DATE"]) - end) < timedelta(milliseconds=2)

    frames = await probe(api.make_url(recording["hls_url"]))
    assert frames["video"] >= 0.9 * 4 * 30 * 0.75 and frames["audio"] > 0


async def test_the_recording_is_cut_at_its_fragments_and_a_torn_one_is_left_out(tmp_path):
    video = tmp_path / "recording.mp4"
    await fragmented_mp4(video)
    data = video.read_bytes()
    whole = scan(io.BytesIO(data))
    assert len(whole.fragments) == 4  # 2 s at a keyframe every 15 frames of 30 fps
    assert whole.fragments[0].offset == whole.header_size
    assert sum(fragment.duration for fragment in whole.fragments) == pytest.approx(2.0)
    assert data[whole.fragments[-1].offset + 4 : whole.fragments[-1].offset + 8] == b"moof"
    last = whole.fragments[-1]
    torn = scan(io.BytesIO(data[: last.offset + last.size - 1]))
    assert [(f.offset, f.size) for f in torn.fragments] == [
        (f.offset, f.size) for f in whole.fragments[:-1]
    ]
    assert scan(io.BytesIO(data[: whole.header_size])).fragments == []
    with pytest.raises(ValueError):
        scan(io.BytesIO(data[: whole.header_size - 1]))


async def test_a_missing_recording_has_no_playlist(api, show):
    live_id = show["live"]["id"]
    await assert_problem(
        await api.get(f"/hls/{live_id}/replay/20260101T000000Z.m3u8"), 404, "recording-not-found"
    )
    await assert_problem(
        await api.get(f"/hls/{live_id}/replay/not-a-name.m3u8"), 404, "recording-not-found"
    )


async def probe(url) -> dict[str, int]:
    """Frames ffprobe decodes through the playlist, per stream type."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-count_frames", "-show_entries",
        "stream=codec_type,nb_read_frames", "-of", "json", str(url),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    streams = json.loads(out)["streams"]
    return {stream["codec_type"]: int(stream["nb_read_frames"]) for stream in streams}


async def test_nginx_passes_one_request_per_playlist_to_the_app(api, show, tmp_path):
    """deploy/nginx.conf's HLS cache in front of the app: a crowd asking at once for the
    same playlist costs the app one request, the others wait for it and are served from
    the cache."""
    live_id, name = show["live"]["id"], "20260101T120000Z"
    video = api.app[STREAM_OUTPUTS].recordings / live_id / f"{name}.mp4"
    await fragmented_mp4(video)
    async with nginx_in_front(api.server.port, tmp_path) as base, aiohttp.ClientSession() as client:
        playlist = await crowd(client, f"{base}/hls/{live_id}/replay/{name}.m3u8")
    assert b"#EXT-X-PLAYLIST-TYPE:VOD" in playlist
    assert served(api, VOD_ROUTE) == 1


async def test_nginx_passes_one_request_per_part_and_blocking_reload(api, show, tmp_path):
    """Live: the crowd asks for the next part before it exists, and for the playlist that
    will list it (`_HLS_msn`, `_HLS_part`); both block in the app, which sees one request
    of each, and every player gets the same answer."""
    source = write_test_flv(tmp_path / "source.flv", seconds=30, gop=30, bframes=2)
    live_id = show["live"]["id"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    try:
        await eventually(lambda: status(api, live_id), "live")
        async with (
            nginx_in_front(api.server.port, tmp_path) as base,
            aiohttp.ClientSession() as client,
        ):
            playlist = f"{base}/hls/{live_id}/index.m3u8"
            await eventually_true(lambda: answers_ok(client, playlist))
            async with client.get(playlist) as answer:
                (hint,) = tags(await answer.text(), "EXT-X-PRELOAD-HINT")
            msn, part = re.fullmatch(r"part(\d+)\.(\d+)\.m4s", hint["URI"]).groups()
            parts_before = served(api, MEDIA_ROUTE)
            playlists_before = served(api, PLAYLIST_ROUTE)
            blocking = f"{playlist}?_HLS_msn={msn}&_HLS_part={part}"
            media, reloads = await asyncio.gather(
                crowd(client, f"{base}/hls/{live_id}/{hint['URI']}"),
                crowd(client, blocking),
            )
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
    assert media and hint["URI"] in reloads.decode()
    assert served(api, MEDIA_ROUTE) == parts_before + 1
    assert served(api, PLAYLIST_ROUTE) == playlists_before + 1


async def crowd(client: aiohttp.ClientSession, url: str) -> bytes:
    """`AUDIENCE` requests for `url` at once: one reaches the app (MISS), the others are
    held by the cache lock and served from the cache (HIT), all with the same body."""

    async def fetch() -> tuple[str, bytes]:
        async with client.get(url) as answer:
            assert answer.status == 200, await answer.text()
            return answer.headers["X-Cache-Status"], await answer.read()

    answers = await asyncio.gather(*(fetch() for _ in range(AUDIENCE)))
    statuses = Counter(status for status, _ in answers)
    assert statuses == {"MISS": 1, "HIT": AUDIENCE - 1}, statuses
    (body,) = {body for _, body in answers}
    return body


async def answers_ok(client: aiohttp.ClientSession, url: str) -> bool:
    async with client.get(url) as answer:
        return answer.status == 200


def served(api, route: str) -> float:
    """GET requests the app answered with 200 on `route` (its own metrics)."""
    value = api.app[METRICS].registry.get_sample_value(
        "streamcart_http_requests_total", {"method": "GET", "route": route, "status": "200"}
    )
    return value or 0.0


async def fragmented_mp4(path: Path) -> None:
    """Two seconds of video muxed as the recordings are (a fragment per keyframe)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code, errors = await run_ffmpeg(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "2",
            "-c:v", "libx264", "-g", "15", "-movflags", MP4_OPTIONS["movflags"],
            str(path),
        ]
    )  # fmt: skip
    assert code == 0, errors


@contextlib.asynccontextmanager
async def nginx_in_front(app_port: int, folder: Path) -> AsyncIterator[str]:
    """nginx on loopback with deploy/nginx.conf's HLS cache and `location /hls/` as they
    are written there, proxying to the app; yields its base URL."""
    nginx = shutil.which("nginx")
    if nginx is None:
        missing("nginx is not installed (Debian: nginx-light)")
    port = free_port()
    config = folder / "nginx.conf"
    config.write_text(hls_cache_config(app_port, port, folder))
    checked = await asyncio.create_subprocess_exec(
        nginx, "-t", "-q", "-p", str(folder), "-c", str(config), stderr=asyncio.subprocess.PIPE
    )
    _, errors = await checked.communicate()
    assert checked.returncode == 0, errors.decode()
    process = await asyncio.create_subprocess_exec(
        nginx, "-p", str(folder), "-c", str(config), stderr=asyncio.subprocess.PIPE
    )
    try:
        await until_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


def hls_cache_config(app_port: int, port: int, folder: Path) -> str:
    text = NGINX_CONF.read_text()
    cache = re.search(r"^ *proxy_cache_path [^;]*;", text, re.M)
    location = re.search(r"^( *)location /hls/ \{.*?^\1\}", text, re.M | re.S)
    assert cache is not None and location is not None, "deploy/nginx.conf has no HLS cache"
    cache_path = re.sub(r"proxy_cache_path \S+", f"proxy_cache_path {folder / 'cache'}", cache[0])
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {folder / "body"};
    proxy_temp_path {folder / "proxy"};
    {cache_path}
    upstream streamcart_http {{ server 127.0.0.1:{app_port}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        {location[0]}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def until_listening(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if process.returncode is not None:
            assert process.stderr is not None
            raise AssertionError((await process.stderr.read()).decode())
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise AssertionError("nginx did not start listening")


async def test_hls_js_plays_the_live_stream_and_a_pin_lands_on_its_frame(api, show, tmp_path):
    """An RTMP publish with B-frames, played by hls.js in Chromium at low latency; a pin
    made during it shows up as a date range starting at the program date-time of the
    part the server was writing when the pin came (within one part), and hls.js reads it."""
    source = write_test_flv(tmp_path / "source.flv", seconds=30, gop=30, bframes=2)
    live_id, product_id = show["live"]["id"], show["product"]["id"]
    hls_js = await asyncio.to_thread(installed_hls_js)
    playlist_url = f"/hls/{live_id}/index.m3u8"
    seller = await open_socket(api, show["token"])
    await seller.ok("session:join", joining(live_id))
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    try:
        await eventually(lambda: status(api, live_id), "live")
        async with chromium_page(api.make_url("/"), hls_js) as page:
            await page.goto(str(api.make_url("/hls-test/").with_query(src=playlist_url)))
            report = await page.wait_for_function(
                "() => { const r = window.report(); return (r.errors.length || "
                "(r.currentTime > 2 && r.latency > 0)) && r; }",
                polling=100,
                timeout=WAIT * 1000,
            )
            first = await report.json_value()
            assert first["errors"] == [] and first["lowLatency"], first

            playlist = await (await api.get(playlist_url)).text()
            part_target = float(tags(playlist, "EXT-X-PART-INF")[0]["PART-TARGET"])
            (hint,) = tags(playlist, "EXT-X-PRELOAD-HINT")
            written = await api.get(f"/hls/{live_id}/{hint['URI']}")  # waits for the part
            assert written.status == 200
            await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})

            async def pin_listed() -> bool:
                text = await (await api.get(playlist_url)).text()
                return bool(tags(text, "EXT-X-DATERANGE")) and text

            await eventually_true(pin_listed)
            playlist = await (await api.get(playlist_url)).text()
            (pin,) = tags(playlist, "EXT-X-DATERANGE")
            assert pin["CLASS"] == PIN_CLASS and pin["X-PRICE"] == str(LIVE_PRICE)
            frame_time = part_end(playlist, hint["URI"])
            offset = (parse_time(pin["START-DATE"]) - frame_time).total_seconds()
            print(f"pin START-DATE - program date-time of the part being written: {offset:.3f} s")
            assert abs(offset) <= part_target, (offset, part_target)

            seen = await page.wait_for_function(
                "(id) => window.report().dateRanges.includes(id) && window.report()",
                arg=pin["ID"],
                polling=100,
                timeout=WAIT * 1000,
            )
            later = await seen.json_value()
            assert later["currentTime"] > first["currentTime"] and later["errors"] == []
            print(
                f"hls.js latency to live: {later['latency']:.2f} s "
                f"(live sync position {later['liveSyncPosition']:.2f} s)"
            )
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        await seller.client.disconnect()


def part_end(playlist: str, uri: str) -> datetime:
    """The program date-time at which the part `uri` ends (its segment's date plus the
    durations of its parts up to it)."""
    moment: datetime | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            moment = parse_time(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART:") and moment is not None:
            (part,) = tags(line, "EXT-X-PART")
            moment += timedelta(seconds=float(part["DURATION"]))
            if part["URI"] == uri:
                return moment
    raise AssertionError(f"{uri} is not in the playlist")


async def eventually_true(probe) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "never became true"
        await asyncio.sleep(0.1)


def installed_hls_js() -> Path:
    """hls.js from the npm registry, once (the folder is git-ignored)."""
    if not HLS_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed: it fetches hls.js for this test")
        subprocess.run(
            [npm, "install", "--prefix", str(HLS_JS_FOLDER), "--no-save", "--no-audit",
             "--no-fund", "--loglevel=error", HLS_JS_VERSION],
            check=True,
        )  # fmt: skip
    return HLS_JS


@contextlib.asynccontextmanager
async def chromium_page(origin: URL, hls_js: Path | None = None) -> AsyncIterator[Page]:
    """Headless Chromium on loopback; with `hls_js`, `/hls-test/` on the app's origin is
    the test's page and hls.js, answered inside the browser. The rest goes to the app."""

    async def test_page(route: Route) -> None:
        if route.request.url.endswith("/hls.min.js"):
            await route.fulfill(path=hls_js, content_type="text/javascript")
        else:
            await route.fulfill(body=PLAYER_PAGE, content_type="text/html")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            if hls_js is not None:
                await page.route(f"{origin.origin()}/hls-test/**", test_page)
            yield page
        finally:
            await browser.close()


async def test_the_viewer_page_falls_back_to_hls_when_webrtc_cannot_connect(api, show, tmp_path):
    """WHEP unreachable (every offer fails at the network): after a few tries the viewer
    page plays the LL-HLS playlist in its <video>, natively (Chromium here can), with no
    script fetched for it."""
    source = write_test_flv(tmp_path / "source.flv", seconds=30, gop=30)
    live_id = show["live"]["id"]
    publisher = asyncio.create_task(run_ffmpeg(push(api, source, show["key"])))
    try:
        await eventually(lambda: status(api, live_id), "live")
        async with chromium_page(api.make_url("/")) as page:
            offers = []

            async def unreachable(route: Route) -> None:
                offers.append(route.request.method)
                await route.abort("connectionrefused")

            await page.route(f"**/api/live-sessions/{live_id}/whep", unreachable)
            scripts = []
            page.on("request", lambda r: r.resource_type == "script" and scripts.append(r.url))
            await page.goto(str(api.make_url(f"/live/{live_id}")))
            played = await page.wait_for_function(
                "() => { const v = document.querySelector('#video');"
                " return v.src.endsWith('/index.m3u8') && v.currentTime > 1 && v.currentTime; }",
                polling=100,
                timeout=WAIT * 1000,
            )
            assert await played.json_value() > 1
            assert len(offers) >= 3  # WebRTC was tried first, and again
            assert await page.locator("#video-status").text_content() == ""
            origin = str(api.make_url("/").origin())
            assert all(url.startswith(origin) for url in scripts), scripts
    finally:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
