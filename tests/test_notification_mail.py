"""Notifications by email through a mail server outage, end to end: a paid order's
in-app notifications do not wait for the SMTP server, and its mails go out by
themselves (the worker's own retries) once the server is back."""

from __future__ import annotations

import time

import pytest

from tests.bus_support import eventually
from tests.smtp_support import smtp
from tests.test_mail import outbox
from tests.test_notifications import arrived, pay, shop
from tests.test_orders import SEPAY_SETTINGS

__all__ = ["shop", "smtp"]  # fixtures

RETRY_SECONDS = 0.5  # first retry of a refused mail, so the test waits on polls, not back-off
IN_APP_SECONDS = 5.0
MAIL_SECONDS = 30.0  # the worker polls every 5 s; generous for a loaded machine


@pytest.fixture
def api_settings(smtp) -> dict:
    return {**SEPAY_SETTINGS, **smtp.settings(), "smtp_retry_seconds": RETRY_SECONDS}


async def test_with_the_server_down_in_app_arrives_and_the_mail_follows(
    api, smtp, shop, ann, connect
):
    smtp.stop()  # nothing listens on the port: every connection is refused
    socket = await connect(ann["token"])
    started = time.monotonic()
    order = await pay(api, shop, ann)
    pushed = await socket.wait_for(
        "notification:new", lambda n: n["kind"] == "order_paid", within=IN_APP_SECONDS
    )
    assert time.monotonic() - started < IN_APP_SECONDS
    assert pushed["data"]["order_id"] == order["id"]
    await arrived(api, shop["token"], "shop_order_paid")

    async def refused() -> bool:  # queued for both users, and the worker has tried
        rows = await outbox(api)
        return len(rows) == 3 and any(row.last_error for row in rows)

    await eventually(refused, within=IN_APP_SECONDS)
    assert [row.sent_at for row in await outbox(api)] == [None] * 3

    smtp.start()
    received = await smtp.inbox.wait_for(3, within=MAIL_SECONDS)
    by_subject = {mail.message["Subject"]: mail for mail in received}
    code = order["code"]
    assert sorted(by_subject) == [
        f"New paid order {code}",
        f"Order {code} paid",
        f"Order {code} placed",
    ]
    paid = by_subject[f"Order {code} paid"]
    assert paid.recipients == ["ann@example.com"]
    assert "Hello ann," in paid.body("plain")
    assert "We received 150,000 VND. Thank you!" in paid.body("plain")
    assert "<p>We received 150,000 VND. Thank you!</p>" in paid.body("html")
    to_seller = by_subject[f"New paid order {code}"]
    assert to_seller.recipients == ["seller@example.com"]
    assert "150,000 VND received: ready to pack." in to_seller.body("plain")
    assert "<p>150,000 VND received: ready to pack.</p>" in to_seller.body("html")
    assert by_subject[f"Order {code} placed"].recipients == ["ann@example.com"]

    async def all_sent() -> bool:  # recorded once the server has answered
        return all(row.sent_at is not None for row in await outbox(api))

    await eventually(all_sent)
    assert len(smtp.inbox.messages) == 3
