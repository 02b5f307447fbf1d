"""Test helpers for the Socket.IO hub: a recording client and a live session on show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import socketio

from tests.commerce_support import buyer, create_product, seller_with_shop
from tests.test_auth import bearer

WAIT = 5.0


class Socket:
    """A real Socket.IO client (websocket transport) that records every event it gets."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.log: list[tuple[float, str, Any]] = []  # (arrival, event, payload), all of them
        self.refusal: Any = None
        self._unread: list[tuple[str, Any]] = []
        self._arrived = asyncio.Condition()
        self.client.on("*", self._record)
        self.client.on("connect_error", self._refused)

    async def connect(self, url: str, auth: Any = None) -> Socket:
        await self.client.connect(url, auth=auth, transports=["websocket"], wait_timeout=WAIT)
        return self

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data, timeout=WAIT)

    async def ok(self, event: str, data: Any) -> dict:
        """Call and insist on success."""
        answer = await self.call(event, data)
        assert answer["ok"] is True, answer
        return answer

    async def refused(self, event: str, data: Any, code: str) -> dict:
        """Call and insist on a refusal with `code`; returns the error."""
        answer = await self.call(event, data)
        assert answer["ok"] is False and answer["error"]["code"] == code, answer
        return answer["error"]

    async def wait_for(
        self, event: str, match: Callable[[Any], bool] = lambda _: True, within: float = WAIT
    ) -> Any:
        """The oldest unread `event` whose payload matches, waiting for it if need be."""

        def take() -> Any:
            for index, (name, payload) in enumerate(self._unread):
                if name == event and match(payload):
                    del self._unread[index]
                    return payload
            return None

        async with asyncio.timeout(within), self._arrived:
            while (found := take()) is None:
                await self._arrived.wait()
            return found

    def received(self, event: str) -> list[Any]:
        return [payload for _, name, payload in self.log if name == event]

    def arrivals(self, event: str) -> list[float]:
        return [at for at, name, _ in self.log if name == event]

    async def _record(self, event: str, *args: Any) -> None:
        payload = args[0] if len(args) == 1 else list(args)
        async with self._arrived:
            self.log.append((time.monotonic(), event, payload))
            self._unread.append((event, payload))
            self._arrived.notify_all()

    async def _refused(self, data: Any = None) -> None:
        self.refusal = data


def socket_url(api) -> str:
    return str(api.server.make_url("/"))


async def open_socket(api, token: str | None = None, opened: list | None = None) -> Socket:
    socket = Socket()
    if opened is not None:
        opened.append(socket)
    return await socket.connect(socket_url(api), {"token": token} if token else None)


async def seller_on_air(
    api, email: str = "seller@example.com", stock: int = 10, live_stock: int | None = None
) -> dict:
    """A seller, a product (live price 90,000, regular 100,000; `live_stock` units set
    aside for the session, if given) and a session that is live."""
    seller = await seller_with_shop(api, email)
    product = await create_product(
        api,
        seller["token"],
        seller["shop"]["id"],
        name="Áo khoác",
        base_price=100_000,
        stock=stock,
        images=["https://img.example/ao.jpg"],
    )
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": seller["shop"]["id"],
            "title": "Tối nay sale",
            "scheduled_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "products": [
                {"product_id": product["id"], "live_price": 90_000, "live_stock": live_stock}
            ],
        },
        headers=bearer(seller["token"]),
    )
    assert response.status == 201, await response.text()
    live = await response.json()
    started = await api.post(
        f"/api/live-sessions/{live['id']}/start", headers=bearer(seller["token"])
    )
    assert started.status == 200, await started.text()
    return {**seller, "product": product, "live": live, "live_id": live["id"]}


def joining(live_id: str) -> dict:
    return {"live_session_id": live_id}


@dataclass
class OneStreamOnTwo:
    show: dict
    ann: dict
    viewer_a: Socket
    seller_b: Socket
    guest_b: Socket


async def one_stream_on_two(a, b, opened: list) -> OneStreamOnTwo:
    """A viewer on server A, the seller and a guest on server B, in one session: each
    side sees the other's pin and chat, and the viewer count covers both."""
    show = await seller_on_air(a)
    live_id = show["live_id"]
    ann = await buyer(a, "ann@example.com")
    viewer_a = await open_socket(a, ann["token"], opened)
    seller_b = await open_socket(b, show["token"], opened)
    guest_b = await open_socket(b, None, opened)
    await viewer_a.ok("session:join", joining(live_id))
    await seller_b.ok("session:join", joining(live_id))
    snapshot = (await guest_b.ok("session:join", joining(live_id)))["snapshot"]
    assert snapshot["viewers"] == 3  # counted in Redis, whichever server they are on
    await viewer_a.wait_for("viewers:count", lambda c: c["viewers"] == 3)

    pin = {"live_session_id": live_id, "product_id": show["product"]["id"]}
    await seller_b.ok("product:pin", pin)
    pinned = await viewer_a.wait_for("product:pinned")
    assert pinned["product_id"] == show["product"]["id"] and pinned["live_price"] == 90_000
    await seller_b.ok("chat:send", {"live_session_id": live_id, "text": "Xin chào từ B"})
    message = await viewer_a.wait_for("chat:message")
    assert message["text"] == "Xin chào từ B" and message["user_id"] == show["user"]["id"]
    await viewer_a.ok("chat:send", {"live_session_id": live_id, "text": "Chào từ A"})
    assert await guest_b.wait_for("chat:message", lambda m: m["text"] == "Chào từ A")
    return OneStreamOnTwo(show, ann, viewer_a, seller_b, guest_b)
