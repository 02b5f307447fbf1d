"""Follows and notifications end to end on PostgreSQL and RabbitMQ (and embedded, on
SQLite and the in-process bus): events from real checkouts, Sepay webhooks and live
sessions become in-app notifications, stored once, pushed to the user's own sockets and
listed by the REST API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

import storage.backends
from commerce.accounts.models import Role
from commerce.notifications.channels import Notification
from commerce.notifications.consumer import NotificationConsumer
from commerce.notifications.routes import NOTIFICATIONS
from commerce.notifications.service import COLLECTION, now_iso
from live.app import SWEEPER
from live.http.system import BACKENDS
from storage.bus import Event
from storage.documents.rules import MAX_LIMIT
from storage.documents.table import DocumentRow
from storage.ids import new_id
from storage.outbox import OutboxRow
from tests.backends import AMQP_URL, require
from tests.bus_support import RabbitScope, eventually
from tests.commerce_support import account, buyer, create_product, seller_with_shop
from tests.test_auth import assert_problem, bearer
from tests.test_orders import SEPAY_SETTINGS, placed, transfer, webhook


@pytest.fixture(params=["postgresql-rabbitmq", "sqlite-memory"])
def stack(request) -> str:
    """The done-when stack, and the embedded one (SQLite, in-process bus)."""
    return request.param


@pytest.fixture
def sql_url(stack, tmp_path, request) -> str:
    if stack == "sqlite-memory":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def amqp_url(stack, monkeypatch):
    """RabbitMQ on an exchange and queues of this test's own, or "" for the memory bus."""
    if stack == "sqlite-memory":
        yield ""
        return
    require(AMQP_URL, "RabbitMQ")
    scope = RabbitScope(processed=None)

    def scoped_bus(url, processed):
        scope.processed = processed
        return scope.bus(url)

    monkeypatch.setattr(storage.backends, "make_bus", scoped_bus)
    yield AMQP_URL
    await scope.cleanup()


@pytest.fixture
def api_settings(amqp_url) -> dict:
    return {"amqp_url": amqp_url, **SEPAY_SETTINGS}


@pytest.fixture
async def shop(api):
    seller = await seller_with_shop(api, "seller@example.com")
    product = await create_product(api, seller["token"], seller["shop"]["id"], base_price=150_000)
    return {**seller, "product": product}


async def inbox(api, token, **query) -> dict:
    response = await api.get("/api/notifications", params=query, headers=bearer(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def kinds_of(api, token) -> list[str]:
    return [n["kind"] for n in (await inbox(api, token, limit=100))["items"]]


async def arrived(api, token, kind: str, count: int = 1) -> None:
    async def check() -> bool:
        return (await kinds_of(api, token)).count(kind) >= count

    await eventually(check)


async def pay(api, shop, ann) -> dict:
    order = await placed(api, ann["token"], shop["product"]["id"])
    response = await webhook(api, transfer(order["payment"]["code"], order["total"]))
    assert response.status == 200, await response.text()
    return order


async def ship(api, shop, order, steps=("processing", "shipped")) -> None:
    url = f"/api/orders/{order['id']}/status"
    for step in steps:
        response = await api.post(url, json={"status": step}, headers=bearer(shop["token"]))
        assert response.status == 200, await response.text()


async def only(api, token, kind: str) -> dict:
    """The user's one notification of `kind`."""
    (found,) = [n for n in (await inbox(api, token, limit=100))["items"] if n["kind"] == kind]
    return found


async def moderator_of(api, shop, email: str) -> dict:
    """A moderator account the shop's owner added to the shop's team."""
    moderator = await account(api, email, Role.MODERATOR)
    response = await api.post(
        f"/api/shops/{shop['shop']['id']}/moderators",
        json={"user_id": moderator["user"]["id"]},
        headers=bearer(shop["token"]),
    )
    assert response.status == 204, await response.text()
    return moderator


async def test_paid_order_notifies_buyer_and_seller_once(api, shop, ann, connect):
    socket = await connect(ann["token"])
    order = await pay(api, shop, ann)

    await arrived(api, shop["token"], "shop_order_paid")
    await arrived(api, ann["token"], "order_paid")
    pushed = await socket.wait_for("notification:new", lambda n: n["kind"] == "order_paid")
    assert pushed["user_id"] == ann["user"]["id"] and pushed["data"]["order_id"] == order["id"]
    listed = (await inbox(api, ann["token"]))["items"]
    assert [n["id"] for n in listed if n["kind"] == "order_paid"] == [pushed["id"]]
    assert await kinds_of(api, shop["token"]) == ["shop_order_paid"]

    async with api.app[BACKENDS].sessions() as session:
        row = await session.scalar(select(OutboxRow).where(OutboxRow.type == "order.paid"))
    again = Event(type=row.type, data=row.data, id=row.id, occurred_at=row.occurred_at)
    await api.app[BACKENDS].bus.publish(again)  # the bus skips an event it handled
    consumer = NotificationConsumer(
        api.app[BACKENDS].sessions, api.app[NOTIFICATIONS], lambda _: None
    )
    await consumer.handle(again)  # and the consumer itself stores nothing twice
    await ship(api, shop, order)  # an event behind the copy: once it is in, so is the copy
    await socket.wait_for("notification:new", lambda n: n["kind"] == "order_shipped")
    buyer_kinds = await kinds_of(api, ann["token"])
    assert sorted(buyer_kinds) == ["order_created", "order_paid", "order_shipped"]
    assert await kinds_of(api, shop["token"]) == ["shop_order_paid"]
    assert len(socket.received("notification:new")) == 3  # created, paid, shipped: once each


class Recording:
    """A channel that records what it was given, then hangs until released or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def deliver(self, user, notification) -> None:
        self.got.append((user.email, notification.kind))
        if self.fail:
            raise RuntimeError("push service down")
        await self.release.wait()


async def test_hanging_or_failing_channels_never_hold_up_in_app(api, shop, ann):
    email, push = Recording(), Recording(fail=True)
    api.app[NOTIFICATIONS].channels.register("email", email)
    api.app[NOTIFICATIONS].channels.register("push", push)
    try:
        await pay(api, shop, ann)
        await arrived(api, ann["token"], "order_paid")
        await arrived(api, shop["token"], "shop_order_paid")
        await eventually(lambda: len(email.got) == 3 and len(push.got) == 3)
        paid = {("ann@example.com", "order_paid"), ("seller@example.com", "shop_order_paid")}
        assert paid < set(email.got) and paid < set(push.got)
    finally:
        email.release.set()


async def test_partial_payment_tells_buyer_and_seller(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    response = await webhook(api, transfer(order["payment"]["code"], order["total"] // 2))
    assert response.status == 200
    await arrived(api, ann["token"], "order_partly_paid")
    await arrived(api, shop["token"], "shop_payment_problem")


async def test_overpayment_tells_the_buyer_and_the_shop_team(api, shop, ann):
    moderator = await moderator_of(api, shop, "mod@example.com")
    order = await placed(api, ann["token"], shop["product"]["id"])
    response = await webhook(api, transfer(order["payment"]["code"], order["total"] + 50_000))
    assert response.status == 200
    await arrived(api, ann["token"], "order_overpaid")
    overpaid = await only(api, ann["token"], "order_overpaid")
    assert overpaid["body"] == (
        "We received 200,000 VND for 150,000 VND; the difference is due back to you."
    )
    assert overpaid["data"]["order_id"] == order["id"]
    await arrived(api, ann["token"], "order_paid")  # a separate event, in either order
    assert sorted(await kinds_of(api, ann["token"])) == [
        "order_created",
        "order_overpaid",
        "order_paid",
    ]
    for member in (shop, moderator):
        await arrived(api, member["token"], "shop_payment_problem")
        problem = await only(api, member["token"], "shop_payment_problem")
        assert problem["data"] == {
            "order_id": order["id"],
            "payment_id": order["payment"]["id"],
            "outcome": "overpaid",
            "received": 200_000,
            "due": 150_000,
        }
        await arrived(api, member["token"], "shop_order_paid")


async def test_a_second_transfer_for_a_paid_order_counts_both(api, shop, ann):
    order = await pay(api, shop, ann)
    response = await webhook(api, transfer(order["payment"]["code"], order["total"]))
    assert response.status == 200
    await arrived(api, ann["token"], "order_overpaid")
    overpaid = await only(api, ann["token"], "order_overpaid")
    assert overpaid["body"] == (
        "We received 300,000 VND for 150,000 VND; the difference is due back to you."
    )
    await arrived(api, shop["token"], "shop_payment_problem")
    problem = await only(api, shop["token"], "shop_payment_problem")
    assert (problem["data"]["received"], problem["data"]["due"]) == (300_000, 150_000)


async def test_expiry_tells_the_buyer_and_a_late_payment_the_shop_team(api, shop, ann):
    moderator = await moderator_of(api, shop, "mod@example.com")
    order = await placed(api, ann["token"], shop["product"]["id"])
    deadline = datetime.fromisoformat(order["payment_deadline"])
    assert await api.app[SWEEPER].sweep(now=deadline + timedelta(seconds=1)) == 1
    await arrived(api, ann["token"], "order_expired")
    expired = await only(api, ann["token"], "order_expired")
    assert expired["title"] == f"Order {order['code']} expired"
    assert expired["data"]["order_id"] == order["id"] and expired["data"]["status"] == "expired"

    response = await webhook(api, transfer(order["payment"]["code"], order["total"]))
    assert response.status == 200
    for member in (shop, moderator):
        await arrived(api, member["token"], "shop_payment_problem")
        late = await only(api, member["token"], "shop_payment_problem")
        assert late["body"] == (
            "A transfer for an order came in late: 150,000 VND received, 150,000 VND due."
        )
        assert late["data"]["order_id"] == order["id"] and late["data"]["outcome"] == "late"
        assert await kinds_of(api, member["token"]) == ["shop_payment_problem"]
    # the buyer's notifications for the event go first: none for a late payment
    assert sorted(await kinds_of(api, ann["token"])) == ["order_created", "order_expired"]


async def test_only_the_shops_own_team_hears_of_its_orders(api, shop, ann):
    moderator = await moderator_of(api, shop, "mod@example.com")
    other = await seller_with_shop(api, "tim@example.com")
    outsider = await moderator_of(api, other, "other-mod@example.com")
    leaver = await moderator_of(api, shop, "leaver@example.com")
    removed = await api.delete(
        f"/api/shops/{shop['shop']['id']}/moderators/{leaver['user']['id']}",
        headers=bearer(shop["token"]),
    )
    assert removed.status == 204

    order = await pay(api, shop, ann)
    for member in (shop, moderator):
        await arrived(api, member["token"], "shop_order_paid")
        paid = await only(api, member["token"], "shop_order_paid")
        assert paid["title"] == f"New paid order {order['code']}"
    for stranger in (other, outsider, leaver):
        assert await kinds_of(api, stranger["token"]) == []


async def test_follows_are_idempotent_and_counted(api, shop, ann):
    shop_id = shop["shop"]["id"]
    for _ in range(2):
        response = await api.post(f"/api/shops/{shop_id}/follow", headers=bearer(ann["token"]))
        assert response.status == 204
    assert (await (await api.get(f"/api/shops/{shop_id}")).json())["follower_count"] == 1
    follows = await (await api.get("/api/me/follows", headers=bearer(ann["token"]))).json()
    assert [s["id"] for s in follows["items"]] == [shop_id] and follows["next_cursor"] is None
    for _ in range(2):
        response = await api.delete(f"/api/shops/{shop_id}/follow", headers=bearer(ann["token"]))
        assert response.status == 204
    assert (await (await api.get(f"/api/shops/{shop_id}")).json())["follower_count"] == 0
    missing = await api.post("/api/shops/nope/follow", headers=bearer(ann["token"]))
    await assert_problem(missing, 404, "shop-not-found")


async def test_shop_schedule_live_and_flash_sale_notify_followers_only(api, shop, ann, connect):
    bob = await buyer(api, "bob@example.com")
    await api.post(f"/api/shops/{shop['shop']['id']}/follow", headers=bearer(ann["token"]))
    socket = await connect(ann["token"])
    response = await api.post(
        "/api/live-sessions",
        json={
            "shop_id": shop["shop"]["id"],
            "title": "Tối nay sale",
            "scheduled_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "products": [{"product_id": shop["product"]["id"], "live_price": 90_000}],
        },
        headers=bearer(shop["token"]),
    )
    live = await response.json()
    scheduled = await socket.wait_for("notification:new", lambda n: n["kind"] == "shop_scheduled")
    assert scheduled["data"]["title"] == "Tối nay sale"
    started = await api.post(
        f"/api/live-sessions/{live['id']}/start", headers=bearer(shop["token"])
    )
    assert started.status == 200
    pushed = await socket.wait_for("notification:new", lambda n: n["kind"] == "shop_live")
    assert pushed["data"]["live_session_id"] == live["id"]
    assert shop["shop"]["name"] in pushed["title"]
    await arrived(api, ann["token"], "shop_live")

    flash = await api.post(
        f"/api/live-sessions/{live['id']}/flash-sales",
        json={
            "product_id": shop["product"]["id"],
            "flash_price": 50_000,
            "quantity": 1,
            "duration_seconds": 60,
        },
        headers=bearer(shop["token"]),
    )
    assert flash.status == 201, await flash.text()
    sale = await socket.wait_for("notification:new", lambda n: n["kind"] == "flash_started")
    assert sale["data"]["live_session_id"] == live["id"]
    assert sale["data"]["shop_id"] == shop["shop"]["id"]
    assert await kinds_of(api, bob["token"]) == []


async def test_read_one_and_all_and_unread_count(api, shop, ann):
    await pay(api, shop, ann)
    await arrived(api, ann["token"], "order_paid")
    page = await inbox(api, ann["token"], limit=1)
    assert page["unread_count"] == 2 and len(page["items"]) == 1 and page["next_cursor"]
    newest = page["items"][0]
    older = (await inbox(api, ann["token"], limit=1, cursor=page["next_cursor"]))["items"]
    assert [n["kind"] for n in [newest, *older]] == ["order_paid", "order_created"]

    read = await api.post(f"/api/notifications/{newest['id']}/read", headers=bearer(ann["token"]))
    assert read.status == 200 and (await read.json())["read_at"] is not None
    assert (await inbox(api, ann["token"]))["unread_count"] == 1
    theirs = await api.post(
        f"/api/notifications/{newest['id']}/read", headers=bearer(shop["token"])
    )
    await assert_problem(theirs, 404, "notification-not-found")
    everything = await api.post("/api/notifications/read-all", headers=bearer(ann["token"]))
    assert everything.status == 204
    assert (await inbox(api, ann["token"]))["unread_count"] == 0


async def stored(api, user_id: str, count: int) -> list[str]:
    """`count` unread notifications for the user, stored as the service stores them."""
    documents = api.app[BACKENDS].documents
    docs = [
        Notification(new_id(), user_id, "order_paid", "Order paid", "Thanks", {}, now_iso())
        for _ in range(count)
    ]
    for start in range(0, count, MAX_LIMIT):
        chunk = docs[start : start + MAX_LIMIT]
        await documents.insert_many(COLLECTION, [doc.to_document() for doc in chunk])
    return [doc.id for doc in docs]


async def test_read_all_marks_five_thousand_unread_in_one_statement(api, shop, ann, statements):
    await stored(api, ann["user"]["id"], 5000)
    await stored(api, shop["user"]["id"], 3)
    assert (await inbox(api, ann["token"], limit=1))["unread_count"] == 5000

    statements.clear()
    everything = await api.post("/api/notifications/read-all", headers=bearer(ann["token"]))
    assert everything.status == 204
    assert [s.split()[0] for s in statements if "documents" in s] == ["UPDATE"]
    assert (await inbox(api, ann["token"]))["unread_count"] == 0
    assert (await inbox(api, shop["token"]))["unread_count"] == 3


async def test_the_inbox_pages_past_the_stores_largest_read(api, ann, statements):
    kept = await stored(api, ann["user"]["id"], MAX_LIMIT + 50)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        statements.clear()
        page = await inbox(api, ann["token"], limit=100, **({"cursor": cursor} if cursor else {}))
        assert len([s for s in statements if s.startswith("SELECT") and "documents" in s]) <= 2
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(kept, reverse=True)


async def test_retention_deletes_only_notifications_older_than_it(api, shop, ann):
    old = await stored(api, ann["user"]["id"], 2500)
    async with api.app[BACKENDS].sessions.begin() as session:
        await session.execute(
            update(DocumentRow)
            .where(DocumentRow.collection == COLLECTION, DocumentRow.id.in_(old))
            .values(created_at=datetime.now(UTC) - timedelta(days=100))
        )
    recent = await stored(api, ann["user"]["id"], 2) + await stored(api, shop["user"]["id"], 1)

    assert await api.app[NOTIFICATIONS].retention(101).sweep() == 0
    assert await api.app[NOTIFICATIONS].retention(90).sweep() == 2500  # in three batches
    assert await api.app[NOTIFICATIONS].retention(90).sweep() == 0
    left = (await inbox(api, ann["token"]))["items"] + (await inbox(api, shop["token"]))["items"]
    assert sorted(n["id"] for n in left) == sorted(recent)
    with pytest.raises(ValueError, match="retention"):
        api.app[NOTIFICATIONS].retention(-1)  # a cutoff in the future would delete them all


async def test_preferences_turn_in_app_off_for_a_kind(api, shop, ann):
    url = "/api/me/notification-preferences"
    defaults = (await (await api.get(url, headers=bearer(ann["token"]))).json())["preferences"]
    assert defaults["order_paid"] == {"in_app": True, "email": True, "push": True}
    assert defaults["shop_live"] == {"in_app": True, "email": False, "push": True}
    off = {"in_app": False, "email": False, "push": True}
    response = await api.put(
        url, json={"preferences": {"order_paid": off}}, headers=bearer(ann["token"])
    )
    assert response.status == 200
    changed = (await response.json())["preferences"]
    assert changed["order_paid"] == off and changed["order_created"] == defaults["order_created"]
    bad = await api.put(
        url, json={"preferences": {"no_such_kind": off}}, headers=bearer(ann["token"])
    )
    await assert_problem(bad, 422, "validation-error")

    await pay(api, shop, ann)
    await arrived(api, shop["token"], "shop_order_paid")  # the event was handled
    await arrived(api, ann["token"], "order_created")
    assert await kinds_of(api, ann["token"]) == ["order_created"]
    assert (await inbox(api, ann["token"]))["unread_count"] == 1


async def test_first_preference_changes_at_once_both_succeed(api, shop):
    url = "/api/me/notification-preferences"
    choice = {"in_app": True, "email": False, "push": False}
    body = {"preferences": {"order_paid": choice, "shop_live": choice}}
    answers = await asyncio.gather(
        *(api.put(url, json=body, headers=bearer(shop["token"])) for _ in range(4))
    )
    assert [r.status for r in answers] == [200] * 4
    chosen = (await (await api.get(url, headers=bearer(shop["token"]))).json())["preferences"]
    assert chosen["order_paid"] == chosen["shop_live"] == choice


async def test_cancelled_order_tells_the_buyer_why(api, shop, ann):
    order = await placed(api, ann["token"], shop["product"]["id"])
    url = f"/api/orders/{order['id']}/cancel"
    response = await api.post(url, json={"reason": "changed my mind"}, headers=bearer(ann["token"]))
    assert response.status == 200
    await arrived(api, ann["token"], "order_cancelled")
    (cancelled,) = [
        n for n in (await inbox(api, ann["token"]))["items"] if n["kind"] == "order_cancelled"
    ]
    assert cancelled["body"] == "It will not go ahead. changed my mind"
    assert cancelled["data"]["order_id"] == order["id"]
    assert await kinds_of(api, shop["token"]) == []


async def test_shipping_and_delivery_tell_the_buyer(api, shop, ann):
    order = await pay(api, shop, ann)
    await ship(api, shop, order, ("processing", "shipped", "delivered"))
    await arrived(api, ann["token"], "order_delivered")
    kinds = await kinds_of(api, ann["token"])
    assert kinds.count("order_shipped") == 1 and kinds.count("order_delivered") == 1
    assert "order_processing" not in kinds  # a step the buyer is not told about
