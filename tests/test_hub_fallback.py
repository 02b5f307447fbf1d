"""The hub on a library's public path: when the installed python-engineio or
python-socketio lacks an internal its adapter uses, the hub says so when it is built
(naming the library and its version) and still serves Socket.IO: clients connect, join
and receive the room's broadcasts, and the join snapshots still follow the room."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import socketio

from live.hub import broadcast
from live.hub.server import HUB
from live.hub.socketio_private import AckAwareServer
from tests.hub_internals_support import BREAKS
from tests.hub_support import seller_on_air
from tests.test_hub import chat, joined


@pytest.fixture(params=sorted(BREAKS))
def broken(request, monkeypatch) -> str:
    """The library whose internals are broken before the hub is built."""
    BREAKS[request.param](monkeypatch)
    return request.param


@pytest.fixture
def api_settings(broken) -> dict:
    return {}


@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
async def test_without_the_internals_the_hub_serves_on_the_public_path(
    broken, api, connect, caplog
):
    built = [r for r in caplog.get_records("setup") if r.name == "streamcart.hub.internals"]
    assert [r.levelname for r in built] == ["ERROR"]
    assert built[0].getMessage().startswith(f"{broken} {version(broken)} lacks ")
    sio = api.app[HUB].sio
    assert type(sio.manager) is broadcast.NotifyingManager
    server_class = socketio.AsyncServer if broken == "python-socketio" else AckAwareServer
    assert type(sio) is server_class

    show = await seller_on_air(api)
    live_id, product_id = show["live_id"], show["product"]["id"]
    seller, first = await joined(connect, live_id, show["token"])
    viewer, _ = await joined(connect, live_id)
    assert first["pinned"] is None
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": product_id})
    assert (await viewer.wait_for("product:pinned"))["product_id"] == product_id
    await seller.ok("chat:send", chat(live_id, "vẫn chạy"))
    assert (await viewer.wait_for("chat:message"))["text"] == "vẫn chạy"
    _, later = await joined(connect, live_id)
    assert later["pinned"]["product_id"] == product_id
    assert [m["text"] for m in later["messages"]] == ["vẫn chạy"]
