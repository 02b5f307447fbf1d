"""LL-HLS on any replica: two real `streamcart serve` processes on PostgreSQL and Redis.
ffmpeg publishes RTMP to the first; an HLS client of the second gets the playlist, a
blocking reload answered once the part it asked for is there, that part, a segment and
the init segment (the first one's bytes, with its cache headers), and ffprobe and
ffmpeg play the second's playlist. A session nobody publishes is a 404 on both, and
deploy/nginx.conf's HLS cache in front of the second keeps its parts but no 404."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from live.streaming.hls import IMMUTABLE, PLAYLIST_CACHE, PLAYLIST_TYPE
from live.streaming.relay import REPLICA_HEADER
from tests.netns_support import scheduled_session, until_live
from tests.rtmp_support import ffmpeg_publish_args, run_ffmpeg
from tests.server_process import ServerApi, replica_settings, serving
from tests.test_auth import assert_problem
from tests.test_hls import ffprobe, tags
from tests.test_hls_shoppable import nginx_in_front

pytestmark = [
    pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True),
    pytest.mark.postgres,
    pytest.mark.redis,
]

PUBLISH_SECONDS = 60.0  # longer than the test: it is stopped on purpose
FIRST_PART_WITHIN = 20.0
HINT = re.compile(r"part(\d+)\.(\d+)\.m4s")


@pytest.fixture
async def replicas(sql_engine, sql_url, tmp_path):
    async with serving(tmp_path, ("origin", "edge"), replica_settings(sql_url)) as servers:
        yield servers


async def first_playlist(api: ServerApi, path: str) -> str:
    """The live playlist once the stream has its first part; until then the origin says
    "ask again" (503, Retry-After), and the edge passes that on."""
    async with asyncio.timeout(FIRST_PART_WITHIN):
        while True:
            response = await api.get(path)
            if response.status == 200:
                return await response.text()
            await assert_problem(response, 503, "hls-not-ready")
            assert response.headers["Retry-After"] == "1"
            await asyncio.sleep(0.2)


async def media(api: ServerApi, path: str) -> bytes:
    """An fMP4 file of the stream, checked to be served as one that never changes."""
    response = await api.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "video/mp4"
    assert response.headers["Cache-Control"] == IMMUTABLE
    return await response.read()


@contextlib.asynccontextmanager
async def publishing(origin: ServerApi) -> AsyncIterator[str]:
    """A session ffmpeg publishes to over RTMP on `origin`, live; yields its HLS base path."""
    show = await scheduled_session(origin)
    live_id = show["live"]["id"]
    rtmp_port = URL(show["live"]["stream"]["server_url"]).port
    publisher = asyncio.create_task(
        run_ffmpeg(ffmpeg_publish_args(rtmp_port, show["key"], PUBLISH_SECONDS), 90)
    )
    try:
        await until_live(origin, live_id)
        yield f"/hls/{live_id}"
    finally:
        publisher.cancel()
        await asyncio.gather(publisher, return_exceptions=True)


async def unpublished(origin: ServerApi) -> str:
    """The HLS base path of a session nobody publishes to."""
    return f"/hls/{(await scheduled_session(origin, 'quiet@example.com'))['live']['id']}"


def hinted_part(playlist: str) -> tuple[str, int, int]:
    """The preload hint's URI, its segment and its part."""
    (hint,) = tags(playlist, "#EXT-X-PRELOAD-HINT")
    msn, part = map(int, HINT.fullmatch(hint["URI"]).groups())
    return hint["URI"], msn, part


async def test_a_stream_plays_over_hls_on_the_replica_that_does_not_ingest_it(replicas):
    origin, edge = replicas
    async with publishing(origin) as base:
        hint, msn, part = hinted_part(await first_playlist(edge, f"{base}/index.m3u8"))
        hinted = asyncio.create_task(media(edge, f"{base}/{hint}"))
        reload = await edge.get(f"{base}/index.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
        assert reload.status == 200, await reload.text()
        assert reload.content_type == PLAYLIST_TYPE
        assert reload.headers["Cache-Control"] == PLAYLIST_CACHE
        reloaded = await reload.text()
        assert f'URI="{hint}"' in reloaded or f"seg{msn}.m4s" in reloaded
        part_body = await hinted
        assert part_body[4:8] == b"moof"
        assert part_body == await media(origin, f"{base}/{hint}")

        whole = await edge.get(f"{base}/index.m3u8", params={"_HLS_msn": msn})
        assert f"seg{msn}.m4s" in await whole.text()  # answered once segment msn is whole
        assert (await media(edge, f"{base}/seg{msn}.m4s"))[4:8] == b"moof"
        assert (await media(edge, f"{base}/init.mp4"))[4:8] == b"ftyp"

        url = str(edge.server.make_url(f"{base}/index.m3u8"))
        streams = await asyncio.to_thread(ffprobe, url, count_frames=False)
        assert streams["video"]["codec_name"] == "h264"
        assert streams["audio"]["codec_name"] == "aac"
        decode = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-t", "1"]
        code, errors = await run_ffmpeg([*decode, "-f", "null", "-"], seconds=30)
        assert code == 0 and "error" not in errors.lower(), errors

        # A request one replica forwarded is answered where it lands, never sent on.
        forwarded = await edge.get(f"{base}/index.m3u8", headers={REPLICA_HEADER: "another"})
        await assert_problem(forwarded, 404, "not-found")

        quiet = await unpublished(origin)
        for api in (origin, edge):
            for name in ("index.m3u8", "init.mp4", "part0.0.m4s"):
                await assert_problem(await api.get(f"{quiet}/{name}"), 404, "not-found")
    assert not edge.server.logged_errors(), edge.server.explain("logged errors")


async def test_nginx_in_front_of_the_other_replica_caches_its_parts_but_no_404(replicas, tmp_path):
    """The part comes from the origin through the edge once, then from the cache; a
    session nobody publishes is asked of the app every time (it may go live any moment)."""
    origin, edge = replicas
    async with (
        publishing(origin) as base,
        nginx_in_front(edge.server.port, tmp_path) as front,
        aiohttp.ClientSession() as client,
    ):
        hint, _, _ = hinted_part(await first_playlist(edge, f"{base}/index.m3u8"))
        answers = []
        for _ in range(2):
            async with client.get(f"{front}{base}/{hint}") as answer:
                assert answer.status == 200, await answer.text()
                answers.append((answer.headers["X-Cache-Status"], await answer.read()))
        assert [status for status, _ in answers] == ["MISS", "HIT"]
        assert answers[1][1] == await media(origin, f"{base}/{hint}")

        quiet = await unpublished(origin)
        for _ in range(2):
            async with client.get(f"{front}{quiet}/index.m3u8") as answer:
                assert answer.status == 404
                assert answer.headers["X-Cache-Status"] == "MISS"
