"""Mail against a real SMTP server on loopback: what arrives (recipients, subject, both
bodies), and that an outage loses nothing and holds up nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from commerce.mail.outbox import MailRow
from commerce.mail.templates import NOTIFICATION
from commerce.mail.worker import MAILER, MAX_ATTEMPTS
from commerce.notifications.channels import Notification, Recipient
from commerce.notifications.routes import NOTIFICATIONS
from tests.smtp_support import smtp
from tests.test_auth import register

__all__ = ["smtp"]  # fixture


@pytest.fixture
def api_settings(smtp) -> dict:
    return {**smtp.settings(), "smtp_from": "Stream Cart <shop@example.com>"}


async def outbox(api) -> list[MailRow]:
    sessions = api.app[MAILER]._sessions
    async with sessions() as session:
        return list(await session.scalars(select(MailRow).order_by(MailRow.created_at)))


def test_templates_escape_values_in_html_only():
    mail = NOTIFICATION.render(
        name='<b>Ann</b> & "co"', title="Shop\r\nBcc: x@example.com", body="Live", link="/"
    )
    assert '<b>Ann</b> & "co"' in mail.text
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; &quot;co&quot;" in mail.html
    assert "<b>Ann</b>" not in mail.html
    assert mail.subject == "Shop Bcc: x@example.com"  # one header line, whatever was sent


async def test_a_queued_mail_reaches_the_server_with_both_bodies(api, smtp):
    mail = NOTIFICATION.render(name="<i>Ann</i>", title="Shop went live", body="Hi", link="/x")
    await api.app[MAILER].send_later("ann@example.com", mail)
    [received] = await smtp.inbox.wait_for(1)
    assert received.recipients == ["ann@example.com"]
    assert received.sender == "shop@example.com"
    assert received.message["Subject"] == "Shop went live"
    assert received.message["To"] == "ann@example.com"
    assert "Hello <i>Ann</i>," in received.body("plain")
    assert "<p>Hello &lt;i&gt;Ann&lt;/i&gt;,</p>" in received.body("html")


async def test_notifications_are_mailed_through_the_email_channel(api, smtp):
    channel = api.app[NOTIFICATIONS].channels.get("email")
    await channel.deliver(
        Recipient("u1", "bob@example.com", "Bob"),
        Notification(
            "n1",
            "u1",
            "order.shipped",
            "Your order shipped",
            "On its way",
            {"url": "/orders/1"},
            "2026-12-04T00:00:00Z",
        ),
    )
    [received] = await smtp.inbox.wait_for(1)
    assert received.recipients == ["bob@example.com"]
    assert received.message["Subject"] == "Your order shipped"
    assert "On its way" in received.body("plain")
    assert "/orders/1" in received.body("html")


async def test_with_the_server_down_mail_waits_and_goes_out_once_it_is_back(api, smtp):
    assert (await register(api, email="ann@example.com")).status == 201
    smtp.stop()
    response = await api.post("/api/auth/password-reset", json={"email": "ann@example.com"})
    assert response.status == 202  # answered while the mail server is down
    mailer = api.app[MAILER]
    await mailer.settled()  # the attempt the request woke the worker for
    assert await mailer.deliver_due() == 0
    [row] = await outbox(api)
    assert row.sent_at is None and row.attempts >= 1 and row.last_error
    smtp.start()
    later = mailer.clock() + timedelta(hours=2)
    assert await mailer.deliver_due(now=later) == 1
    [received] = await smtp.inbox.wait_for(1)
    assert received.recipients == ["ann@example.com"]
    assert received.message["Subject"] == "Reset your Stream Cart password"
    [row] = await outbox(api)
    assert row.sent_at is not None


async def test_a_refused_recipient_is_not_retried(api, smtp):
    mail = NOTIFICATION.render(name="X", title="T", body="B", link="/")
    await api.app[MAILER].send_later("refused@example.com", mail)
    await api.app[MAILER].settled()
    assert await api.app[MAILER].deliver_due() == 0
    [row] = await outbox(api)
    assert row.sent_at is None and row.attempts == MAX_ATTEMPTS
    later = api.app[MAILER].clock() + timedelta(days=7)
    assert await api.app[MAILER].deliver_due(now=later) == 0
    assert smtp.inbox.messages == []
