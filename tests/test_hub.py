"""The Socket.IO hub with real clients over websockets, on one process (SQLite, in-memory
cache and bus): auth, rooms and snapshots, chat and moderation, pins, viewer counts,
reactions, pushes from commerce events, and hostile input."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import socketio

from live.hub.chat import RATE_LIMIT
from live.hub.reactions import PER_USER_PER_SECOND
from live.sessions.routes import LIVE_SESSIONS
from tests.commerce_support import buyer
from tests.hub_support import Socket, joining, socket_url
from tests.test_auth import bearer
from tests.test_orders import SEPAY_KEY, transfer, webhook

pytestmark = pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY, "sweep_interval": 3600.0}


@pytest.fixture
async def people(api):
    return {"ann": await buyer(api, "ann@example.com"), "bob": await buyer(api, "bob@example.com")}


async def joined(connect, live_id: str, token: str | None = None) -> tuple[Socket, dict]:
    socket = await connect(token)
    answer = await socket.ok("session:join", joining(live_id))
    return socket, answer["snapshot"]


def chat(live_id: str, text: str) -> dict:
    return {"live_session_id": live_id, "text": text}


async def test_a_bad_token_is_refused_not_downgraded_to_guest(api):
    gone = await buyer(api, "gone@example.com")
    response = await api.post("/api/auth/logout", json={}, headers=bearer(gone["token"]))
    assert response.status == 204, await response.text()
    for auth, code in (
        ({"token": "not-a-jwt"}, "invalid-token"),
        ({"token": gone["token"]}, "invalid-token"),  # revoked by logout
        ({"token": 42}, "bad-auth"),
        ("token", "bad-auth"),
    ):
        socket = Socket()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await socket.connect(socket_url(api), auth)
        assert socket.refusal["data"]["code"] == code, socket.refusal
        assert socket.refusal["message"]


async def test_a_guest_watches_but_cannot_chat_or_react(connect, show):
    guest, snapshot = await joined(connect, show["live_id"])
    assert snapshot["status"] == "live" and snapshot["role"] is None
    seller, _ = await joined(connect, show["live_id"], show["token"])
    await seller.ok("chat:send", chat(show["live_id"], "Chào cả nhà"))
    assert (await guest.wait_for("chat:message"))["text"] == "Chào cả nhà"
    error = await guest.refused("chat:send", chat(show["live_id"], "hi"), "login-required")
    assert error["message"]
    await guest.refused(
        "reaction:send", {"live_session_id": show["live_id"], "kind": "like"}, "login-required"
    )


async def test_viewers_and_the_seller_see_each_others_messages(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    bob, _ = await joined(connect, live_id, people["bob"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])

    sent = (await ann.ok("chat:send", chat(live_id, "  Còn size M không shop?  ")))["message"]
    assert sent["text"] == "Còn size M không shop?"
    assert sent["display_name"] == "ann" and sent["user_id"] == people["ann"]["user"]["id"]
    for socket in (ann, bob, seller):
        assert await socket.wait_for("chat:message") == sent
    await seller.ok("chat:send", chat(live_id, "Còn nhé!"))
    for socket in (ann, bob):
        assert (await socket.wait_for("chat:message"))["display_name"] == "seller"


async def test_chat_needs_a_join_and_an_open_session(api, connect, show, people):
    live_id = show["live_id"]
    ann = await connect(people["ann"]["token"])
    await ann.refused("chat:send", chat(live_id, "hi"), "not-joined")
    await ann.refused("session:join", joining("no-such-session"), "live-session-not-found")
    await ann.ok("session:join", joining(live_id))
    await api.post(f"/api/live-sessions/{live_id}/end", headers=bearer(show["token"]))
    await ann.wait_for("session:status", lambda s: s["status"] == "ended")
    await ann.refused("chat:send", chat(live_id, "hi"), "live-session-ended")
    await ann.ok("session:leave", joining(live_id))
    await ann.refused("chat:send", chat(live_id, "hi"), "not-joined")


async def test_the_snapshot_has_everything_to_draw_the_page(connect, show, people):
    live_id = show["live_id"]
    seller, staff_view = await joined(connect, live_id, show["token"])
    assert staff_view["role"] == "owner" and staff_view["sales"] == {"orders": 0, "revenue": 0}
    await seller.ok(
        "product:pin", {"live_session_id": live_id, "product_id": show["product"]["id"]}
    )
    for n in range(1, 56):  # staff skip the rate limit
        await seller.ok("chat:send", chat(live_id, f"message {n}"))

    _, snapshot = await joined(connect, live_id, people["ann"]["token"])
    assert snapshot["live_session_id"] == live_id and snapshot["status"] == "live"
    assert snapshot["pinned"] == {
        "live_session_id": live_id,
        "product_id": show["product"]["id"],
        "name": "Áo khoác",
        "image": "https://img.example/ao.jpg",
        "price": 100_000,
        "live_price": 90_000,
        "available": 10,
    }
    assert snapshot["flash"] is None and snapshot["slow_mode_seconds"] == 0
    assert snapshot["viewers"] == 2 and snapshot["server_time"]
    assert "sales" not in snapshot and snapshot["role"] is None
    texts = [m["text"] for m in snapshot["messages"]]
    assert texts == [f"message {n}" for n in range(6, 56)]  # the last 50, oldest first


async def test_flash_sales_reach_the_room_and_the_snapshot(api, connect, show):
    live_id = show["live_id"]
    viewer, _ = await joined(connect, live_id)
    response = await api.post(
        f"/api/live-sessions/{live_id}/flash-sales",
        json={
            "product_id": show["product"]["id"],
            "flash_price": 50_000,
            "quantity": 3,
            "duration_seconds": 60,
            "per_buyer_limit": 1,
        },
        headers=bearer(show["token"]),
    )
    assert response.status == 201, await response.text()
    flash = await response.json()
    started = await viewer.wait_for("flash:started")
    assert started["id"] == flash["id"] and started["live_session_id"] == live_id
    _, snapshot = await joined(connect, live_id)
    assert snapshot["flash"]["id"] == flash["id"]
    assert snapshot["flash"]["ends_at"] and snapshot["flash"]["server_time"]


async def test_pins_are_for_staff_and_broadcast(connect, show, people):
    live_id = show["live_id"]
    product_id = show["product"]["id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    pin = {"live_session_id": live_id, "product_id": product_id}

    await ann.refused("product:pin", pin, "forbidden")
    answer = await seller.ok("product:pin", pin)
    pinned = await ann.wait_for("product:pinned")
    assert pinned == answer["product"]
    assert pinned["name"] == "Áo khoác" and pinned["live_price"] == 90_000
    assert pinned["available"] == 10
    await seller.refused("product:pin", {**pin, "product_id": "not-on-show"}, "product-not-on-show")
    await ann.refused("product:unpin", joining(live_id), "forbidden")
    await seller.ok("product:unpin", joining(live_id))
    assert await ann.wait_for("product:unpinned") == {"live_session_id": live_id}


async def test_length_and_rate_limits(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    error = await ann.refused("chat:send", chat(live_id, "x" * 301), "invalid-payload")
    assert error["fields"] == ["text"]
    await ann.refused("chat:send", chat(live_id, "   "), "invalid-payload")
    await ann.ok("chat:send", chat(live_id, "x" * 300))
    for _ in range(RATE_LIMIT - 1):
        await ann.ok("chat:send", chat(live_id, "again"))
    error = await ann.refused("chat:send", chat(live_id, "one too many"), "rate-limited")
    assert 1 <= error["retry_after"] <= 10


async def test_slow_mode_spaces_viewers_but_not_staff(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    await ann.refused("chat:slow_mode", {"live_session_id": live_id, "seconds": 5}, "forbidden")
    await seller.ok("chat:slow_mode", {"live_session_id": live_id, "seconds": 30})
    assert await ann.wait_for("chat:slow_mode") == {"live_session_id": live_id, "seconds": 30}

    await ann.ok("chat:send", chat(live_id, "first"))
    error = await ann.refused("chat:send", chat(live_id, "second"), "slow-mode")
    assert 25 <= error["retry_after"] <= 30
    await seller.ok("chat:send", chat(live_id, "staff one"))
    await seller.ok("chat:send", chat(live_id, "staff two"))
    _, snapshot = await joined(connect, live_id)
    assert snapshot["slow_mode_seconds"] == 30


async def test_a_mute_holds_until_it_times_out(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    mute = {"live_session_id": live_id, "user_id": people["ann"]["user"]["id"], "seconds": 2}
    await ann.refused("chat:mute", {**mute, "user_id": people["bob"]["user"]["id"]}, "forbidden")
    await seller.ok("chat:mute", mute)

    error = await ann.refused("chat:send", chat(live_id, "hello?"), "muted")
    assert 1 <= error["retry_after"] <= 2
    await asyncio.sleep(error["retry_after"])  # the mute began before the refusal
    await ann.ok("chat:send", chat(live_id, "back"))

    await seller.ok("chat:mute", {**mute, "seconds": 600})
    await ann.refused("chat:send", chat(live_id, "hello?"), "muted")
    await seller.ok("chat:mute", {**mute, "seconds": 0})  # lifted early
    await ann.ok("chat:send", chat(live_id, "thanks"))


async def test_a_ban_holds_across_reconnects_until_lifted(connect, show, people):
    live_id = show["live_id"]
    ann_token = people["ann"]["token"]
    ann, _ = await joined(connect, live_id, ann_token)
    seller, _ = await joined(connect, live_id, show["token"])
    ban = {"live_session_id": live_id, "user_id": people["ann"]["user"]["id"]}
    await seller.ok("chat:ban", ban)
    await seller.ok("chat:ban", ban)  # twice is fine
    await ann.refused("chat:send", chat(live_id, "let me talk"), "banned")

    await ann.client.disconnect()
    again, _ = await joined(connect, live_id, ann_token)
    await again.refused("chat:send", chat(live_id, "still me"), "banned")
    await again.refused("chat:unban", ban, "forbidden")
    await seller.ok("chat:unban", ban)
    await again.ok("chat:send", chat(live_id, "sorry"))


async def test_deleted_messages_vanish_for_everyone(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    bob, _ = await joined(connect, live_id, people["bob"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    rude = (await ann.ok("chat:send", chat(live_id, "rude")))["message"]
    typo = (await ann.ok("chat:send", chat(live_id, "tpyo")))["message"]
    await ann.ok("chat:send", chat(live_id, "kept"))

    forget = {"live_session_id": live_id, "message_id": rude["id"]}
    await bob.refused("chat:delete", forget, "forbidden")
    await seller.ok("chat:delete", forget)
    assert await bob.wait_for("chat:deleted") == forget
    await ann.ok("chat:delete", {"live_session_id": live_id, "message_id": typo["id"]})
    await seller.refused("chat:delete", forget, "message-not-found")
    _, snapshot = await joined(connect, live_id)
    assert [m["text"] for m in snapshot["messages"]] == ["kept"]


async def test_blocked_words_are_refused_whatever_the_case_and_accents(connect, show, people):
    live_id = show["live_id"]
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])
    words = {"live_session_id": live_id, "words": ["lừa đảo", "ass"]}
    await ann.refused("chat:blocklist", words, "forbidden")
    assert (await seller.ok("chat:blocklist", words))["words"] == ["lừa đảo", "ass"]
    assert (await seller.ok("chat:blocklist", joining(live_id)))["words"] == ["lừa đảo", "ass"]

    await ann.refused("chat:send", chat(live_id, "Shop này LUA DAO!"), "blocked-word")
    await ann.ok("chat:send", chat(live_id, "A classic look"))


async def test_viewer_counts_follow_joins_and_leaves_at_most_once_a_second(connect, show, people):
    live_id = show["live_id"]
    seller, _ = await joined(connect, live_id, show["token"])
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    await joined(connect, live_id, people["ann"]["token"])  # a second tab counts once
    guest, snapshot = await joined(connect, live_id)
    assert snapshot["viewers"] == 3
    await seller.wait_for("viewers:count", lambda c: c["viewers"] == 3)

    await guest.ok("session:leave", joining(live_id))
    await seller.wait_for("viewers:count", lambda c: c["viewers"] == 2)
    await ann.client.disconnect()
    await seller.wait_for("viewers:count", lambda c: c["viewers"] == 2)  # other tab still open

    counts = seller.received("viewers:count")
    assert all(c["live_session_id"] == live_id for c in counts)
    arrivals = seller.arrivals("viewers:count")
    assert all(b - a > 0.9 for a, b in itertools.pairwise(arrivals)), arrivals


async def test_reactions_are_summed_per_second_and_capped_per_user(connect, show, people):
    live_id = show["live_id"]
    viewer, _ = await joined(connect, live_id)
    ann, _ = await joined(connect, live_id, people["ann"]["token"])
    like = {"live_session_id": live_id, "kind": "like"}
    for _ in range(10):  # taps, as a client sends them: no ack, back to back
        await ann.client.emit("reaction:send", like)
    likes = 0
    async with asyncio.timeout(5):
        while likes < 10:
            likes += (await viewer.wait_for("reaction:counts"))["counts"]["like"]
    assert likes == 10 and ann.received("error") == []
    assert len(viewer.received("reaction:counts")) <= 2  # at most split across one boundary

    await ann.refused("reaction:send", {**like, "kind": "angry"}, "invalid-payload")
    for _ in range(PER_USER_PER_SECOND + 5):
        await ann.client.emit("reaction:send", like)
    await ann.wait_for("error", lambda e: e["code"] == "rate-limited")


async def test_a_checkout_updates_stock_in_rooms_showing_the_product(api, connect, show, people):
    live_id = show["live_id"]
    viewer, _ = await joined(connect, live_id)
    response = await api.post(
        "/api/orders/checkout",
        json={
            "payment_method": "bank_transfer",
            "items": [{"product_id": show["product"]["id"], "quantity": 3}],
        },
        headers=bearer(people["ann"]["token"]),
    )
    assert response.status == 201, await response.text()
    # (A late event from creating the product may come first: wait for this one.)
    change = await viewer.wait_for("stock:changed", lambda c: c["variant_available"] == 7)
    assert change["live_session_id"] == live_id and change["product_id"] == show["product"]["id"]
    assert change["available"] == 7


async def test_payment_reaches_only_the_buyer_and_sales_only_the_staff(api, connect, show, people):
    live_id = show["live_id"]
    ann_token = people["ann"]["token"]
    ann_tab1, _ = await joined(connect, live_id, ann_token)
    ann_tab2 = await connect(ann_token)  # not even watching: still the buyer's socket
    bob, _ = await joined(connect, live_id, people["bob"]["token"])
    seller, _ = await joined(connect, live_id, show["token"])

    response = await api.post(
        "/api/cart/items",
        json={"product_id": show["product"]["id"], "quantity": 2, "live_session_id": live_id},
        headers=bearer(ann_token),
    )
    assert response.status == 201, await response.text()
    await ann_tab2.wait_for("cart:updated")
    response = await api.post(
        "/api/orders/checkout", json={"payment_method": "bank_transfer"}, headers=bearer(ann_token)
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    assert order["total"] == 180_000  # the live price

    response = await webhook(api, transfer(f"CT {order['payment']['code']}", order["total"]))
    assert response.status == 200, await response.text()
    for tab in (ann_tab1, ann_tab2):
        paid = await tab.wait_for("order:paid")
        assert paid["order_id"] == order["id"] and paid["total"] == 180_000
        assert paid["code"] == order["code"] and paid["live_session_id"] == live_id
    sales = await seller.wait_for("sales:updated")
    assert sales == {"live_session_id": live_id, "orders": 1, "revenue": 180_000}
    # Those were single emits to rooms: had bob or a viewer been in one, they had it by now.
    assert bob.received("order:paid") == [] and bob.received("sales:updated") == []
    assert ann_tab1.received("sales:updated") == []

    response = await api.post(
        f"/api/orders/{order['id']}/cancel", json={}, headers=bearer(show["token"])
    )
    assert response.status == 200, await response.text()
    sales = await seller.wait_for("sales:updated")
    assert sales == {"live_session_id": live_id, "orders": 0, "revenue": 0}


@pytest.mark.parametrize(
    "payload",
    [
        "not an object",
        42,
        None,
        [1, 2],
        {"text": "missing the session"},
        {"live_session_id": 5, "text": "wrong type"},
        {"live_session_id": "x" * 100, "text": "too long an id"},
        {"live_session_id": "s", "text": "x" * 20_000},
        {"live_session_id": "s", "text": "hi", "admin": True},
        {"live_session_id": "s", "text": {"nested": ["deep"] * 100}},
    ],
)
async def test_malformed_payloads_get_an_error_and_the_socket_survives(connect, show, payload):
    socket = await connect()
    error = await socket.refused("chat:send", payload, "invalid-payload")
    assert error["message"] and "x" * 100 not in error["message"]
    await socket.ok("session:join", joining(show["live_id"]))
    assert socket.client.connected


async def test_unknown_events_extra_arguments_and_missing_acks_are_answered(connect, show):
    socket = await connect()
    await socket.refused("nope:nothing", {"a": 1}, "unknown-event")
    await socket.refused("session:join", ("one", "two"), "invalid-payload")
    assert socket.received("error") == []  # an ack carried those refusals
    await socket.client.emit("chat:send", "no ack wanted")
    error = await socket.wait_for("error")
    assert error["event"] == "chat:send" and error["code"] == "invalid-payload"
    await socket.client.emit("made:up")
    assert (await socket.wait_for("error"))["code"] == "unknown-event"
    await socket.ok("session:join", joining(show["live_id"]))
    assert socket.client.connected


async def test_a_bug_in_a_handler_is_an_internal_error_not_a_dead_socket(
    api, connect, show, monkeypatch
):
    async def broken(*args):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(api.app[LIVE_SESSIONS], "set_pin", broken)
    seller, _ = await joined(connect, show["live_id"], show["token"])
    pin = {"live_session_id": show["live_id"], "product_id": show["product"]["id"]}
    error = await seller.refused("product:pin", pin, "internal-error")
    assert "fire" not in error["message"]
    await seller.ok("chat:send", chat(show["live_id"], "still here"))
