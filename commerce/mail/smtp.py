"""Sending one mail over SMTP (aiosmtplib): both bodies as multipart/alternative."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str
    password: str
    sender: str
    starttls: bool


class SmtpSender:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def message(self, recipient: str, subject: str, text: str, html: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self._config.sender.rpartition("@")[2] or None)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    async def send(self, recipient: str, subject: str, text: str, html: str) -> None:
        config = self._config
        await aiosmtplib.send(
            self.message(recipient, subject, text, html),
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            start_tls=config.starttls,
            timeout=TIMEOUT_SECONDS,
        )
