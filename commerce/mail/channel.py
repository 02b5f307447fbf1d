"""Email as a notification channel: each notification becomes a queued mail."""

from __future__ import annotations

from commerce.mail.templates import NOTIFICATION
from commerce.mail.worker import Mailer
from commerce.notifications.channels import Notification, Recipient


class EmailChannel:
    def __init__(self, mailer: Mailer, public_url: str) -> None:
        self._mailer = mailer
        self._public_url = public_url.rstrip("/")

    async def deliver(self, user: Recipient, notification: Notification) -> None:
        """Queue it: the mail worker sends and retries, so the caller never waits on SMTP."""
        link = str(notification.data.get("url") or "/")
        if not link.startswith(("https://", "/")):
            link = "/"
        mail = NOTIFICATION.render(
            name=user.display_name,
            title=notification.title,
            body=notification.body,
            link=f"{self._public_url}{link}" if link.startswith("/") else link,
        )
        await self._mailer.send_later(user.email, mail)
