"""Live-session stats and the pin timeline, on both SQL backends: real Socket.IO viewers,
real HTTP, a real Sepay webhook; expectations come from what each test did."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from commerce.accounts.models import Role
from live.analytics.intervals import overlaps, peak, union
from live.analytics.routes import LIVE_STATS
from live.app import STREAMS
from tests.commerce_support import account, buyer, create_product, seller_with_shop
from tests.hub_support import Socket, joining, seller_on_air
from tests.test_auth import bearer
from tests.test_orders import SEPAY_KEY, transfer, webhook
from tests.webrtc_support import DecodingViewer, keep_ice_on_loopback

POLLS = 50
POLL_EVERY = 0.1


@pytest.fixture
def api_settings() -> dict:
    return {"sepay_api_key": SEPAY_KEY, "sweep_interval": 3600.0}


def now() -> datetime:
    return datetime.now(UTC)


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


async def watch(connect, live_id: str, token: str | None = None) -> Socket:
    socket = await connect(token)
    await socket.ok("session:join", joining(live_id))
    return socket


async def stats(api, token: str | None, live_id: str, status: int = 200) -> dict:
    headers = bearer(token) if token else {}
    response = await api.get(f"/api/live-sessions/{live_id}/stats", headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def end(api, show: dict) -> dict:
    response = await api.post(
        f"/api/live-sessions/{show['live_id']}/end", headers=bearer(show["token"])
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def buy_and_pay(api, token: str, product_id: str, quantity: int, live_id: str) -> dict:
    """Cart line from the stream, checkout by bank transfer, paid by Sepay's webhook."""
    response = await api.post(
        "/api/cart/items",
        json={"product_id": product_id, "quantity": quantity, "live_session_id": live_id},
        headers=bearer(token),
    )
    assert response.status == 201, await response.text()
    response = await api.post(
        "/api/orders/checkout", json={"payment_method": "bank_transfer"}, headers=bearer(token)
    )
    assert response.status == 201, await response.text()
    (order,) = (await response.json())["orders"]
    paid = await webhook(api, transfer(f"CT {order['payment']['code']}", order["total"]))
    assert paid.status == 200, await paid.text()
    return order


def within(value: float, low: float, high: float) -> bool:
    """`value` lies in [low, high], allowing the microsecond rounding of stored times."""
    return low - 0.01 <= value <= high + 0.01


async def test_stats_report_viewers_chat_orders_and_pins(api, connect):
    show = await seller_on_air(api)
    live_id, first = show["live_id"], show["product"]
    second = await create_product(
        api, show["token"], show["shop"]["id"], name="Quần", base_price=50_000
    )
    added = await api.post(
        f"/api/live-sessions/{live_id}/products",
        json={"products": [{"product_id": second["id"]}]},
        headers=bearer(show["token"]),
    )
    assert added.status == 200, await added.text()
    ann = await buyer(api, "ann@example.com")
    seller = await connect(show["token"])  # pins without watching

    before_ann = now()
    ann_tab = await watch(connect, live_id, ann["token"])
    after_ann = now()
    await watch(connect, live_id, ann["token"])  # a second tab: still one viewer
    before_guest = now()
    guest = await watch(connect, live_id)
    after_guest = now()
    await ann_tab.ok("chat:send", {"live_session_id": live_id, "text": "Chào cả nhà"})

    before_first_pin = now()
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": first["id"]})
    after_first_pin = now()
    order = await buy_and_pay(api, ann["token"], first["id"], 2, live_id)
    response = await api.post(
        f"/api/live-sessions/{live_id}/flash-sales",
        json={
            "product_id": second["id"],
            "flash_price": 40_000,
            "quantity": 1,
            "duration_seconds": 60,
        },
        headers=bearer(show["token"]),
    )
    assert response.status == 201, await response.text()
    flash = await response.json()
    before_guest_left = now()
    await guest.ok("session:leave", joining(live_id))
    after_guest_left = now()
    before_second_pin = now()
    await seller.ok("product:pin", {"live_session_id": live_id, "product_id": second["id"]})
    after_second_pin = now()
    ended = await end(api, show)
    started_at, ended_at = at(ended["started_at"]), at(ended["ended_at"])

    result = await stats(api, show["token"], live_id)

    assert result["status"] == "ended" and result["duration_seconds"] == pytest.approx(
        seconds(started_at, ended_at), abs=0.001
    )
    viewers = result["viewers"]
    # Ann (two tabs) and the guest; Ann's tabs are still open, so she is watching now.
    assert (viewers["unique"], viewers["unique_signed_in"], viewers["peak"]) == (2, 1, 2)
    assert viewers["current"] == 1
    # Ann watched from her first join to the end (tabs merged), the guest until leaving.
    ann_low, ann_high = seconds(after_ann, ended_at), seconds(before_ann, ended_at)
    guest_low = seconds(after_guest, before_guest_left)
    guest_high = seconds(before_guest, after_guest_left)
    assert within(viewers["watch_seconds_total"], ann_low + guest_low, ann_high + guest_high)
    assert viewers["watch_seconds_average"] == pytest.approx(
        viewers["watch_seconds_total"] / 2, abs=0.001
    )
    assert (result["chat_messages"], result["chat_messages_deleted"]) == (1, 0)
    assert result["orders"] == {"count": 1, "paid": 1, "revenue": order["total"], "units_sold": 2}

    by_id = {p["product_id"]: p for p in result["products"]}
    assert [p["product_id"] for p in result["products"]] == [first["id"], second["id"]]
    pinned_first, pinned_second = by_id[first["id"]], by_id[second["id"]]
    # Both viewers watched the first pin; Ann bought during it: 1 buyer of 2 viewers.
    assert pinned_first | {"seconds_pinned": 0} == {
        "product_id": first["id"],
        "name": first["name"],
        "on_show": True,
        "times_pinned": 1,
        "seconds_pinned": 0,
        "viewers_while_pinned": 2,
        "buyers_while_pinned": 1,
        "orders_while_pinned": 1,
        "units_while_pinned": 2,
        "orders": 1,
        "units": 2,
        "conversion": 1 / 2,
    }
    assert within(
        pinned_first["seconds_pinned"],
        seconds(after_first_pin, before_second_pin),
        seconds(before_first_pin, after_second_pin),
    )
    # The guest had left before the second pin: Ann alone watched it, and bought nothing.
    assert (pinned_second["times_pinned"], pinned_second["viewers_while_pinned"]) == (1, 1)
    assert (pinned_second["orders"], pinned_second["conversion"]) == (0, 0.0)
    assert within(
        pinned_second["seconds_pinned"],
        seconds(after_second_pin, ended_at),
        seconds(before_second_pin, ended_at),
    )

    timeline = await api.app[LIVE_STATS].timeline(live_id)
    assert [(e.kind, e.product_id) for e in timeline] == [
        ("pinned", first["id"]),
        ("flash_started", second["id"]),
        ("unpinned", first["id"]),
        ("pinned", second["id"]),
        ("unpinned", second["id"]),  # ending the session closes the pin and the flash sale
        ("flash_ended", second["id"]),
    ]
    assert timeline[1].flash_sale_id == flash["id"] and timeline[-1].at == ended_at
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)


async def test_peak_is_the_largest_overlap_not_the_number_of_visits(api, connect):
    show = await seller_on_air(api)
    live_id = show["live_id"]
    ann = await buyer(api, "ann@example.com")
    present: set[str] = set()
    highest = 0

    async def step(who: str, joins: bool) -> None:
        nonlocal highest
        (present.add if joins else present.discard)(who)
        highest = max(highest, len(present))

    first = await watch(connect, live_id)
    await step("guest 1", True)
    await first.ok("session:leave", joining(live_id))
    await step("guest 1", False)

    second = await watch(connect, live_id)
    await step("guest 2", True)
    await second.client.disconnect()  # closing the socket closes its visit too
    await step("guest 2", False)
    await until_watching(api, show["token"], live_id, len(present))

    tab = await watch(connect, live_id, ann["token"])
    await step("ann", True)
    await tab.ok("session:leave", joining(live_id))
    await step("ann", False)
    await watch(connect, live_id, ann["token"])  # Ann comes back on a new socket
    await step("ann", True)
    await watch(connect, live_id)
    await step("guest 3", True)
    await end(api, show)

    viewers = (await stats(api, show["token"], live_id))["viewers"]
    assert viewers["peak"] == highest == 2
    assert viewers["unique"] == 4 and viewers["unique_signed_in"] == 1


async def until_watching(api, token: str, live_id: str, count: int) -> None:
    """Wait (bounded) until the server has handled disconnects down to `count` viewers;
    the visit is closed before the count moves."""
    for _ in range(POLLS):
        if (await stats(api, token, live_id))["viewers"]["current"] == count:
            return
        await asyncio.sleep(POLL_EVERY)
    raise AssertionError(f"the viewer count never reached {count}")


async def test_only_the_shop_team_sees_the_stats(api):
    show = await seller_on_air(api)
    live_id = show["live_id"]
    admin = await account(api, "admin@example.com", Role.ADMIN)
    other_seller = await seller_with_shop(api, "other@example.com")
    viewer = await buyer(api, "ann@example.com")

    assert (await stats(api, admin["token"], live_id))["live_session_id"] == live_id
    for outsider in (other_seller, viewer):
        problem = await stats(api, outsider["token"], live_id, status=403)
        assert problem["code"] == "not-your-shop"
    await stats(api, None, live_id, status=401)
    await stats(api, show["token"], "no-such-session", status=404)
    spec = await (await api.get("/openapi.json")).json()
    answer = spec["paths"]["/api/live-sessions/{live_session_id}/stats"]["get"]["responses"]
    assert answer["200"]["content"]["application/json"]["schema"]["$ref"].endswith("LiveStatsOut")


def test_tabs_merge_and_touching_visits_do_not_overlap():
    t = datetime(2026, 1, 1, tzinfo=UTC)

    def span(start: int, end: int) -> tuple[datetime, datetime]:
        return t + timedelta(seconds=start), t + timedelta(seconds=end)

    assert union([span(5, 9), span(0, 6), span(12, 15)]) == [span(0, 9), span(12, 15)]
    # One leaves as the next joins; two more overlap each other: peak 2, not 4 visits.
    viewers = [[span(0, 10)], [span(10, 20)], [span(12, 30)], [span(25, 40)]]
    assert peak(viewers) == 2
    assert peak([union([span(0, 10), span(2, 8)])]) == 1  # one viewer, two tabs
    assert overlaps([span(0, 10)], [span(9, 11)]) and not overlaps([span(0, 10)], [span(10, 11)])


async def test_whep_viewers_count_in_the_audience_once_per_person(api, connect, monkeypatch):
    """A WHEP-only audience is counted; a signed-in user watching over WHEP with the
    app's socket open is one viewer, not two; leaving counts down."""
    keep_ice_on_loopback(monkeypatch)
    show = await seller_on_air(api)
    live_id, token = show["live_id"], show["token"]
    api.app[STREAMS].open(live_id)  # a publisher, as far as viewers can tell
    ann = await buyer(api, "ann@example.com")
    peers = [DecodingViewer() for _ in range(3)]
    try:
        guests = [await offer(api, live_id, peer) for peer in peers[:2]]
        await until_watching(api, token, live_id, 2)
        await watch(connect, live_id, ann["token"])
        await until_watching(api, token, live_id, 3)
        await offer(api, live_id, peers[2], ann["token"])  # Ann's own player
        await asyncio.sleep(0.3)
        assert (await stats(api, token, live_id))["viewers"]["current"] == 3
        left = await api.delete(guests[0])
        assert left.status == 204
        await until_watching(api, token, live_id, 2)
    finally:
        for peer in peers:
            await peer.close()


async def offer(api, live_id: str, peer: DecodingViewer, token: str | None = None) -> str:
    headers = {"Content-Type": "application/sdp", **(bearer(token) if token else {})}
    response = await api.post(
        f"/api/live-sessions/{live_id}/whep", data=await peer.offer(), headers=headers
    )
    assert response.status == 201, await response.text()
    await peer.accept(await response.text())
    return response.headers["Location"]
