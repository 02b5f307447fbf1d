"""The mail worker: sends what the outbox holds, retrying with back-off.

Each mail is claimed before it is sent (its next attempt pushed past the send
timeout, guarded by the value read), so replicas sharing the outbox do not send it
twice. A server that cannot be reached ends the round: the mails stay queued and go
out once it answers again. A refusal that will not change (5xx) stops retrying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiosmtplib
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.mail.outbox import MailRow, queue_mail
from commerce.mail.smtp import TIMEOUT_SECONDS, SmtpSender
from commerce.mail.templates import Rendered
from storage.periodic import Periodic

log = logging.getLogger("streamcart.mail")

POLL_SECONDS = 5.0
BATCH = 50
MAX_ATTEMPTS = 20  # with the back-off below, about a day of retrying
FIRST_RETRY_SECONDS = 10.0
MAX_RETRY_SECONDS = 3600.0
CLAIM = timedelta(seconds=TIMEOUT_SECONDS * 3)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempts: int, first: float = FIRST_RETRY_SECONDS) -> timedelta:
    return timedelta(seconds=min(MAX_RETRY_SECONDS, first * 2 ** (attempts - 1)))


def _permanent(error: Exception) -> bool:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return True
    return isinstance(error, aiosmtplib.SMTPResponseException) and error.code >= 500


class Mailer:
    """Queues mail (a no-op when SMTP is off) and runs the worker that sends it."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: SmtpSender | None,
        clock: Clock = utc_now,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self.clock = clock
        self._first_retry = first_retry_seconds
        self._running = False
        self._again = False
        self._kick: asyncio.Task | None = None
        self._periodic = Periodic("mail", POLL_SECONDS, self.deliver_due)

    @property
    def enabled(self) -> bool:
        return self._sender is not None

    def queue(self, session: AsyncSession, recipient: str, mail: Rendered) -> None:
        """Add a mail to the caller's transaction; call `wake` once it commits."""
        if self._sender is not None:
            queue_mail(session, recipient, mail, self.clock())

    async def send_later(self, recipient: str, mail: Rendered) -> None:
        """Queue a mail in a transaction of its own and wake the worker."""
        if self._sender is None:
            return
        async with self._sessions.begin() as session:
            self.queue(session, recipient, mail)
        self.wake()

    def wake(self) -> None:
        """Send what is due now rather than at the next poll (after a commit that queued
        mail). Runs beside the poll; claims keep a mail from going out twice."""
        if not self._running:
            return
        self._again = True  # a wake during a round runs one more (its mail may be missed)
        if self._kick is None or self._kick.done():
            self._kick = asyncio.create_task(self._deliver_logged(), name="mail-wake")

    async def start(self) -> None:
        if self._sender is not None:
            self._running = True
            await self._periodic.start()

    async def stop(self) -> None:
        self._running = False
        await self._periodic.stop()
        await self.settled()

    async def settled(self) -> None:
        """Wait for the send that `wake` started, if any, to finish."""
        if self._kick is not None:
            await asyncio.wait({self._kick})

    async def _deliver_logged(self) -> None:
        while self._again:
            self._again = False
            try:
                await self.deliver_due()
            except Exception:
                log.exception("mail round failed; retrying at the next poll")
                return

    async def deliver_due(self, now: datetime | None = None) -> int:
        """Send the mails due at `now`; how many went out."""
        if self._sender is None:
            return 0
        now = now or self.clock()
        async with self._sessions() as session:
            due = (
                await session.scalars(
                    select(MailRow)
                    .where(
                        MailRow.sent_at.is_(None),
                        MailRow.attempts < MAX_ATTEMPTS,
                        MailRow.next_attempt_at <= now,
                    )
                    .order_by(MailRow.next_attempt_at)
                    .limit(BATCH)
                )
            ).all()
        sent = 0
        for row in due:
            if not await self._claim(row, now):
                continue
            try:
                await self._sender.send(row.recipient, row.subject, row.text_body, row.html_body)
            except (aiosmtplib.SMTPException, OSError) as error:
                await self._failed(row, error, now)
                if not _permanent(error):
                    break
                continue
            await self._finish(row.id, sent_at=self.clock(), attempts=row.attempts + 1)
            sent += 1
        return sent

    async def _claim(self, row: MailRow, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            claimed = await session.execute(
                update(MailRow)
                .where(MailRow.id == row.id, MailRow.next_attempt_at == row.next_attempt_at)
                .values(next_attempt_at=now + CLAIM)
            )
        return claimed.rowcount == 1

    async def _failed(self, row: MailRow, error: Exception, now: datetime) -> None:
        attempts = MAX_ATTEMPTS if _permanent(error) else row.attempts + 1
        log.warning(
            "mail not sent (attempt %d): %s", row.attempts + 1, error, extra={"mail_id": row.id}
        )
        await self._finish(
            row.id,
            attempts=attempts,
            next_attempt_at=now + retry_delay(attempts, self._first_retry),
            last_error=str(error)[:500],
        )

    async def _finish(self, mail_id: str, **values) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(MailRow).where(MailRow.id == mail_id).values(**values))


MAILER = web.AppKey("mailer", Mailer)
