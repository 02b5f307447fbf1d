"""A stream's health report ends with the stream, on every replica, not when its copy expires."""

from __future__ import annotations

import asyncio

from live.streaming.outputs import StreamOutputs, health_key
from media.hub import StreamHub
from storage.cache.memory import MemoryCache
from tests.media_support import read_flv_tags, send_tag, write_test_flv

INTERVAL = 0.5  # the shared copy would outlive the stream by 3 intervals


class NoTimeline:
    async def timeline(self, live_session_id: str) -> list:
        return []


async def test_health_is_gone_as_soon_as_the_stream_ends(tmp_path):
    cache = MemoryCache()
    emitted: list[str] = []

    async def emit(event: str, data: dict, room: str) -> None:
        emitted.append(event)

    outputs = StreamOutputs(
        tmp_path,
        cache,
        emit,
        NoTimeline(),
        record=False,
        health_interval=INTERVAL,
        staff_room=lambda live_session_id: live_session_id,
    )
    hub = StreamHub()
    outputs.attach("show", hub)
    for tag in read_flv_tags(write_test_flv(tmp_path / "show.flv", seconds=2)):
        send_tag(hub, tag)
    for _ in range(40):  # bounded: the first report is due after one interval
        if emitted:
            break
        await asyncio.sleep(0.05)
    assert emitted == ["stream:health"]
    assert await cache.get(health_key("show")) is not None
    assert (await outputs.health("show"))["width"] == 320

    hub.close()
    await outputs.close()
    assert await cache.get(health_key("show")) is None  # another replica asks the cache
    assert await outputs.health("show") is None
