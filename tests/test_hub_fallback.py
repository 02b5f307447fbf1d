"""The hub on python-socketio's public path: when this python-socketio lacks an internal
the broadcast fast path uses, the hub says so at start and still serves, its join
snapshots still following the room's events."""

from __future__ import annotations

import pytest

from live.hub import broadcast
from live.hub.server import HUB
from tests.hub_support import seller_on_air
from tests.test_hub import chat, joined


def test_this_python_socketio_has_what_the_fast_path_uses():
    broadcast.check()


@pytest.fixture
def api_settings(monkeypatch) -> dict:
    def missing() -> None:
        raise broadcast.SocketioIncompatible("python-socketio 9.9 lacks AsyncSocket.queue")

    monkeypatch.setattr(broadcast, "check", missing)
    return {}


@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
async def test_without_the_internals_the_hub_serves_on_the_public_path(api, connect):
    manager = api.app[HUB].sio.manager
    assert type(manager) is broadcast.NotifyingManager
    show = await seller_on_air(api)
    live_id, product_id = show["live_id"], show["product"]["id"]
    seller, first = await joined(connect, live_id, show["token"])
    viewer, _ = await joined(connect, live_id)
    assert first["pinned"] is None
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    assert (await viewer.wait_for("product:pinned"))["product_id"] == product_id
    await seller.ok("chat:send", chat(live_id, "vẫn chạy"))
    _, later = await joined(connect, live_id)
    assert later["pinned"]["product_id"] == product_id
    assert [m["text"] for m in later["messages"]] == ["vẫn chạy"]
