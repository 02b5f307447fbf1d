"""Accounts: registration, login, refresh-token rotation with re-use detection, logout,
and admins disabling and enabling users."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.accounts.models import AccountAudit, RefreshToken, Role, User
from commerce.accounts.passwords import Passwords
from commerce.accounts.revocations import FAMILY, TOKEN, Revocations, Revoked
from commerce.accounts.throttle import LoginThrottle
from commerce.accounts.tokens import (
    AccessTokens,
    InvalidToken,
    Principal,
    hash_refresh_token,
    new_refresh_token,
)
from storage.ids import new_id
from storage.web import Problem

log = logging.getLogger("streamcart.accounts")

SELF_SERVICE_ROLES = {Role.BUYER, Role.SELLER}
ACTIVE_NAME_SECONDS = 5.0
MAX_REMEMBERED_NAMES = 100_000
BAD_CREDENTIALS = Problem(401, "invalid-credentials", "Email or password is incorrect.")
ACCOUNT_GONE = Problem(401, "invalid-token", "The account no longer exists.")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def normalize_email(email: str) -> str:
    return email.strip().lower()


class AccountService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        access_tokens: AccessTokens,
        throttle: LoginThrottle,
        refresh_ttl_seconds: int,
        passwords: Passwords,
    ) -> None:
        self._sessions = sessions
        self.access_tokens = access_tokens
        self.revocations = Revocations(sessions, access_tokens.ttl.total_seconds())
        self._throttle = throttle
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self.passwords = passwords
        self._active_names: dict[str, tuple[float, str | None]] = {}  # user -> until, name

    async def register(
        self, email: str, password: str, display_name: str, role: Role = Role.BUYER
    ) -> User:
        if role not in SELF_SERVICE_ROLES:
            raise Problem(403, "role-not-allowed", "Only buyer or seller accounts can sign up.")
        return await self.create_user(email, password, display_name, role)

    async def create_user(self, email: str, password: str, display_name: str, role: Role) -> User:
        """Create any account (admins and moderators come from operators, not sign-up)."""
        user = User(
            id=new_id(),
            email=normalize_email(email),
            password_hash=await self.passwords.hash(password),
            display_name=display_name.strip(),
            role=role.value,
            is_active=True,
            created_at=datetime.now(UTC),
        )
        try:
            async with self._sessions.begin() as session:
                session.add(user)
        except IntegrityError:
            raise Problem(
                409, "email-taken", "An account with this email already exists."
            ) from None
        log.info("account registered", extra={"user_id": user.id, "role": user.role})
        return user

    async def login(self, email: str, password: str, client_ip: str) -> tuple[User, TokenPair]:
        email = normalize_email(email)
        await self._throttle.attempt(email, client_ip)
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.email == email))
        stored = user.password_hash if user is not None else None
        if not await self.passwords.verify(stored, password) or not user or not user.is_active:
            log.info("login failed", extra={"client_ip": client_ip})
            raise BAD_CREDENTIALS
        await self._throttle.succeeded(email, client_ip)
        if self.passwords.needs_rehash(user.password_hash):
            await self.set_password(user.id, password)
        pair = await self._issue(user, family_id=new_id())
        log.info("login", extra={"user_id": user.id})
        return user, pair

    async def refresh(self, refresh_token: str) -> tuple[User, TokenPair]:
        """Rotate: the presented token is spent and a new one issued in the same family.

        Presenting a spent token means it was stolen or replayed, so every token in
        its family is revoked, with the access tokens issued to it, and the holder must
        log in again.
        """
        now = datetime.now(UTC)
        token_hash = hash_refresh_token(refresh_token)
        revoked = None
        async with self._sessions.begin() as session:
            spent = await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.token_hash == token_hash,
                    RefreshToken.used_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.expires_at > now,
                )
                .values(used_at=now)
                .returning(RefreshToken.user_id, RefreshToken.family_id)
            )
            row = spent.first()
            user = None
            if row is None:
                revoked = await self._revoke_family_of(session, token_hash, now)
            else:
                user = await session.get(User, row.user_id)
        if revoked is not None:
            self.revocations.learn(revoked)
        if row is None or user is None or not user.is_active:
            raise Problem(401, "invalid-refresh-token", "The refresh token is not valid.")
        return user, await self._issue(user, family_id=row.family_id)

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """End this login: its refresh family and every access token issued to it stop
        working (the refresh token, when sent, names a family too)."""
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            families = {principal.family_id}
            if refresh_token:
                families.add(
                    await session.scalar(
                        select(RefreshToken.family_id).where(
                            RefreshToken.token_hash == hash_refresh_token(refresh_token),
                            RefreshToken.user_id == principal.user_id,
                        )
                    )
                )
            families.discard(None)
            revoked = [await self.revocations.record(session, TOKEN, principal.token_id)]
            for family in families:
                await self._revoke_family(session, family, now)
                revoked.append(await self.revocations.record(session, FAMILY, family))
        for each in revoked:
            self.revocations.learn(each)
        log.info("logout", extra={"user_id": principal.user_id})

    async def authenticate(self, access_token: str) -> Principal:
        """The token's principal unless it was revoked: asked of the in-memory mirror of
        the revocations (no I/O per request; see `commerce.accounts.revocations`)."""
        principal = self.access_tokens.verify(access_token)
        if self.revocations.revoked(principal):
            raise InvalidToken("token was revoked")
        return principal

    async def set_active(self, actor: Principal, user_id: str, active: bool) -> User:
        """Disable or enable an account (admins). Disabling ends every login the user
        holds: a database trigger records the revocation (it also fires for a change
        made by hand in SQL), the refresh families are revoked, and this process holds
        it before answering; others within the revocations' poll interval."""
        if user_id == actor.user_id and not active:
            raise Problem(409, "cannot-disable-self", "Admins cannot disable their own account.")
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise Problem(404, "user-not-found", "No user with this id.")
            if user.is_active != active:
                user.is_active = active
                await session.flush()
                if not active:
                    await session.execute(
                        update(RefreshToken)
                        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
                session.add(
                    AccountAudit(
                        id=new_id(),
                        actor_id=actor.user_id,
                        user_id=user_id,
                        action="enable" if active else "disable",
                        created_at=now,
                    )
                )
        self.forget_name(user_id)
        await self.revocations.poll()
        log.warning(
            "account %s",
            "enabled" if active else "disabled",
            extra={"user_id": user_id, "actor_id": actor.user_id},
        )
        return user

    def forget_name(self, user_id: str) -> None:
        """Drop the remembered display name (it was changed)."""
        self._active_names.pop(user_id, None)

    async def get_user(self, user_id: str) -> User | None:
        async with self._sessions() as session:
            return await session.get(User, user_id)

    async def active_name(self, user_id: str) -> str | None:
        """The display name of an active account (None: gone or deactivated), read at
        most once per ACTIVE_NAME_SECONDS per user: every viewer's Socket.IO connect asks,
        and a deactivation then stops new connections within that time."""
        now = time.monotonic()
        cached = self._active_names.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = await self.get_user(user_id)
        name = user.display_name if user is not None and user.is_active else None
        if len(self._active_names) >= MAX_REMEMBERED_NAMES:
            self._active_names.clear()
        self._active_names[user_id] = (now + ACTIVE_NAME_SECONDS, name)
        return name

    async def _issue(self, user: User, family_id: str) -> TokenPair:
        now = datetime.now(UTC)
        access, access_expires = self.access_tokens.issue(user.id, user.role, family_id, now)
        refresh = new_refresh_token()
        refresh_expires = now + self._refresh_ttl
        async with self._sessions.begin() as session:
            session.add(
                RefreshToken(
                    id=new_id(),
                    user_id=user.id,
                    family_id=family_id,
                    token_hash=hash_refresh_token(refresh),
                    created_at=now,
                    expires_at=refresh_expires,
                )
            )
        return TokenPair(access, access_expires, refresh, refresh_expires)

    async def _revoke_family_of(
        self, session: AsyncSession, token_hash: str, now: datetime
    ) -> Revoked | None:
        token = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        if token is not None and token.used_at is not None and token.revoked_at is None:
            log.warning(
                "refresh token re-used; revoking its family",
                extra={"user_id": token.user_id, "family_id": token.family_id},
            )
            await self._revoke_family(session, token.family_id, now)
            return await self.revocations.record(session, FAMILY, token.family_id)
        return None

    async def replace_password(
        self, session: AsyncSession, user_id: str, password_hash: str, keep: str | None
    ) -> list[Revoked]:
        """Store a new password hash and end every login of the user but `keep` (the
        caller's own, after a password change), inside the caller's transaction; pass
        what it returns to `revocations.learn` once that commits."""
        await session.execute(
            update(User).where(User.id == user_id).values(password_hash=password_hash)
        )
        families = (
            await session.scalars(
                select(RefreshToken.family_id)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .distinct()
            )
        ).all()
        now = datetime.now(UTC)
        revoked = []
        for family in families:
            if family != keep:
                await self._revoke_family(session, family, now)
                revoked.append(await self.revocations.record(session, FAMILY, family))
        return revoked

    async def _revoke_family(self, session: AsyncSession, family_id: str, now: datetime) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def set_password(self, user_id: str, password: str) -> None:
        """Store a new hash of `password` (a stronger one at login, or a reset)."""
        new_hash = await self.passwords.hash(password)
        async with self._sessions.begin() as session:
            await session.execute(
                update(User).where(User.id == user_id).values(password_hash=new_hash)
            )
