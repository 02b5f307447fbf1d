"""What a user does to their own account: profile, password change, password reset by
an emailed token, email verification by an emailed six-digit code.

Each action is throttled per account and per client IP (the login throttle's counters
under another name), and the answer to anything keyed by an email is the same whether
or not an account has it. Mail is queued in the same transaction as the secret it
carries, and sent by the mail worker: a slow or failing mail server delays nothing here.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts import one_time
from commerce.accounts.models import User
from commerce.accounts.service import ACCOUNT_GONE, AccountService, normalize_email
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import Principal
from commerce.mail.templates import EMAIL_CODE, PASSWORD_RESET
from commerce.mail.worker import Clock, Mailer, utc_now
from storage.web import Problem

log = logging.getLogger("streamcart.accounts")

RESET_TTL = timedelta(minutes=30)
CODE_TTL = timedelta(minutes=10)
INVALID_RESET = Problem(400, "invalid-reset-token", "The reset token is invalid or expired.")
INVALID_CODE = Problem(400, "invalid-code", "The code is wrong, used or expired.")
PROFILE_FIELDS = frozenset({"display_name", "avatar_url", "language"})


class AccountSelfService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        accounts: AccountService,
        mailer: Mailer,
        throttle: LoginThrottle,
        public_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._passwords = accounts.passwords
        self._mailer = mailer
        self._throttle = throttle
        self._public_url = public_url.rstrip("/")
        self.clock = clock

    async def update_profile(self, user_id: str, values: dict[str, str | None]) -> User:
        """Set the given profile fields (a display name cannot be cleared)."""
        values = {
            name: value
            for name, value in values.items()
            if name in PROFILE_FIELDS and (value is not None or name != "display_name")
        }
        async with self._sessions.begin() as session:
            if values:
                await session.execute(update(User).where(User.id == user_id).values(**values))
            user = await session.get(User, user_id, populate_existing=True)
        if user is None:
            raise Problem(401, "invalid-token", "The account no longer exists.")
        self._accounts.forget_name(user_id)
        return user

    async def change_password(
        self, principal: Principal, current: str, new: str, client_ip: str
    ) -> None:
        """Every other login of the user ends; the caller's own stays signed in."""
        await self._throttle.attempt(f"password:{principal.user_id}", client_ip)
        user = await self._accounts.get_user(principal.user_id)
        if user is None or not await self._passwords.verify(user.password_hash, current):
            raise Problem(403, "wrong-password", "The current password is not correct.")
        await self._set_password(new, keep=principal.family_id, user_id=user.id)
        log.info("password changed", extra={"user_id": user.id})

    async def request_reset(self, email: str, client_ip: str) -> None:
        """Mail a reset token if the address has an active account; nothing otherwise.
        The caller cannot tell which happened."""
        email = normalize_email(email)
        await self._throttle.attempt(f"reset:{email}", client_ip)
        now = self.clock()
        async with self._sessions.begin() as session:
            user = await session.scalar(select(User).where(User.email == email))
            if user is None or not user.is_active or not self._mailer.enabled:
                return
            token = one_time.new_token()
            await one_time.issue(session, user.id, one_time.RESET, token, RESET_TTL, now)
            mail = PASSWORD_RESET.render(
                name=user.display_name,
                token=token,
                minutes=int(RESET_TTL.total_seconds() // 60),
                link=f"{self._public_url}/reset-password#token={token}",
            )
            self._mailer.queue(session, user.email, mail)
        self._mailer.wake()
        log.info("password reset mailed", extra={"user_id": user.id})

    async def confirm_reset(self, token: str, new_password: str, client_ip: str) -> None:
        """Spend the token, set the password and end every login of the account."""
        await self._throttle.attempt(f"reset-confirm:{client_ip}", client_ip)
        user_id = await self._set_password(new_password, keep=None, reset_token=token)
        log.info("password reset", extra={"user_id": user_id})

    async def send_verification(self, principal: Principal, client_ip: str) -> None:
        """Mail a six-digit code to the account's address (nothing when it is verified)."""
        await self._throttle.attempt(f"verify:{principal.user_id}", client_ip)
        async with self._sessions.begin() as session:
            user = await session.get(User, principal.user_id)
            if user is None or user.email_verified or not self._mailer.enabled:
                return
            code = one_time.new_code()
            await one_time.issue(session, user.id, one_time.VERIFY, code, CODE_TTL, self.clock())
            mail = EMAIL_CODE.render(
                name=user.display_name, code=code, minutes=int(CODE_TTL.total_seconds() // 60)
            )
            self._mailer.queue(session, user.email, mail)
        self._mailer.wake()

    async def confirm_verification(self, principal: Principal, code: str, client_ip: str) -> User:
        await self._throttle.attempt(f"verify-confirm:{principal.user_id}", client_ip)
        async with self._sessions.begin() as session:
            valid = await one_time.spend_code(session, principal.user_id, code, self.clock())
            if valid:
                await session.execute(
                    update(User).where(User.id == principal.user_id).values(email_verified=True)
                )
        if not valid:
            raise INVALID_CODE
        user = await self._accounts.get_user(principal.user_id)
        if user is None:  # deleted while the request ran
            raise ACCOUNT_GONE
        return user

    async def _set_password(
        self,
        password: str,
        keep: str | None,
        *,
        user_id: str | None = None,
        reset_token: str | None = None,
    ) -> str:
        """Replace the password of `user_id`, or of the owner of `reset_token` (spending it;
        holding it proves the mailbox), and end the other logins, in one transaction."""
        new_hash = await self._passwords.hash(password)
        async with self._sessions.begin() as session:
            if reset_token is not None:
                user_id = await one_time.spend_token(session, reset_token, self.clock())
                if user_id is None:
                    raise INVALID_RESET
                await session.execute(
                    update(User).where(User.id == user_id).values(email_verified=True)
                )
            assert user_id is not None
            revoked = await self._accounts.replace_password(session, user_id, new_hash, keep)
        for each in revoked:
            self._accounts.revocations.learn(each)
        return user_id
