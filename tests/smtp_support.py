"""A real SMTP server on loopback (aiosmtpd) that tests start, stop and read."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

WAIT_SECONDS = 10.0
REFUSED_PREFIX = "refused"  # recipients whose address starts with this get a 550


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def body(self, subtype: str) -> str:
        return self.message.get_body((subtype,)).get_content()


class Inbox:
    """The SMTP server's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith(REFUSED_PREFIX):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
            waiters = list(self._waiters)
        for loop, arrived in waiters:  # the server runs in its own thread and loop
            loop.call_soon_threadsafe(arrived.set)
        return "250 Message accepted"

    async def wait_for(self, count: int, within: float = WAIT_SECONDS) -> list[Received]:
        """The messages once at least `count` have arrived (the worker sends in the
        background); fails after `within` seconds."""
        arrived = asyncio.Event()
        waiter = (asyncio.get_running_loop(), arrived)
        with self._lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                while len(self.messages) < count:
                    await arrived.wait()
                    arrived.clear()
        finally:
            with self._lock:
                self._waiters.remove(waiter)
        return list(self.messages)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """aiosmtpd in its own thread on a fixed loopback port, so it can be stopped (an
    outage) and started again where the app expects it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self) -> dict:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_starttls": False}


@pytest.fixture
def smtp():
    """An SMTP server for the test's app to send to (its `settings()` point there)."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
