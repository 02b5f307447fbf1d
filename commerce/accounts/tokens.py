"""Access tokens (short-lived HS256 JWTs) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from storage.ids import new_id

ISSUER = "streamcart"
ALGORITHM = "HS256"
VERIFIED_KEPT = 10_000  # tokens whose signature check is remembered (per process)


class InvalidToken(Exception):
    """The token is malformed, forged, expired or of the wrong kind."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: taken from a verified access token."""

    user_id: str
    role: str
    token_id: str
    expires_at: datetime
    family_id: str | None = None  # the login (refresh family) the token was issued to
    issued_at: float = 0.0  # seconds since the epoch


class AccessTokens:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        self._secret = secret
        self.ttl = timedelta(seconds=ttl_seconds)
        self._verified: dict[str, Principal] = {}

    def issue(
        self, user_id: str, role: str, family_id: str | None = None, now: datetime | None = None
    ) -> tuple[str, datetime]:
        now = now or datetime.now(UTC)
        expires = now + self.ttl
        claims = {
            "iss": ISSUER,
            "sub": user_id,
            "role": role,
            "typ": "access",
            "jti": new_id(),
            "fam": family_id,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> Principal:
        """The token's principal. A token verified before is answered from memory until it
        expires: the same bytes always pass the same signature check, and checking it again
        cost tens of microseconds per request. (Revocation is the caller's check.)"""
        known = self._verified.get(token)
        if known is not None and known.expires_at > datetime.now(UTC):
            return known
        principal = self._decode(token)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = principal
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinning the algorithm rejects "alg: none" and RS/HS swaps
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "jti", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if claims.get("typ") != "access" or not isinstance(claims.get("role"), str):
            raise InvalidToken("not an access token")
        return Principal(
            user_id=str(claims["sub"]),
            role=claims["role"],
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            family_id=claims["fam"] if isinstance(claims.get("fam"), str) else None,
            issued_at=float(claims["iat"]),
        )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Only this hash is stored, so a database leak does not leak usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()
