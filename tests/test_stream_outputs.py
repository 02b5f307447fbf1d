"""What a stream leaves behind when it ends: its health report gone on every replica at
once (not when its copy expires), its recording and sale timeline complete before a
replay asked for on `stream:ended` is answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from live.analytics.schemas import TimelineEntryOut
from live.streaming.outputs import StreamOutputs, health_key
from media.hub import StreamHub
from media.recording import Timeline, timeline_path
from storage.cache.memory import MemoryCache
from tests.media_support import read_flv_tags, send_tag, write_test_flv

INTERVAL = 0.5  # the shared copy would outlive the stream by 3 intervals


class OnePin:
    async def timeline(self, live_session_id: str) -> list:
        return [TimelineEntryOut(at=datetime.now(UTC), kind="pinned", product_id="lipstick")]


def outputs_of(tmp_path, cache, emit=None, *, record: bool) -> StreamOutputs:
    async def ignore(event: str, data: dict, room: str) -> None:
        pass

    return StreamOutputs(
        tmp_path,
        cache,
        emit or ignore,
        OnePin(),
        record=record,
        health_interval=INTERVAL,
        staff_room=lambda live_session_id: live_session_id,
    )


def stream_into(hub: StreamHub, tmp_path) -> None:
    for tag in read_flv_tags(write_test_flv(tmp_path / "show.flv", seconds=2)):
        send_tag(hub, tag)


async def test_health_is_gone_as_soon_as_the_stream_ends(tmp_path):
    cache = MemoryCache()
    emitted: list[str] = []

    async def emit(event: str, data: dict, room: str) -> None:
        emitted.append(event)

    outputs = outputs_of(tmp_path, cache, emit, record=False)
    hub = StreamHub()
    outputs.attach("show", hub)
    stream_into(hub, tmp_path)
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


async def test_a_replay_asked_for_when_the_stream_ends_waits_for_its_timeline(tmp_path):
    outputs = outputs_of(tmp_path, MemoryCache(), record=True)
    hub = StreamHub()
    outputs.attach("show", hub)
    stream_into(hub, tmp_path)
    await asyncio.sleep(0.1)  # let the outputs read the stream
    await asyncio.wait_for(outputs.settled("show"), 1)  # live: answered at once

    hub.close()
    await outputs.settled("show")
    (video,) = (outputs.recordings / "show").glob("*.mp4")
    entries = Timeline.load(timeline_path(video)).entries
    assert [entry["kind"] for entry in entries] == ["pinned"]
    assert entries[0]["data"] == {"product_id": "lipstick"}
