"""Bodies of the web push API: the browser's PushSubscription as its `toJSON()` gives it."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from storage.web import Input


def _b64url(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        raise ValueError("not base64url") from None


def _p256_point(value: str) -> str:
    """RFC 8291 encrypts to this key: it must be an uncompressed P-256 point."""
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(value))
    except ValueError:
        raise ValueError("not an uncompressed P-256 public key in base64url") from None
    return value


def _auth_secret(value: str) -> str:
    if len(_b64url(value)) != 16:
        raise ValueError("not a 16-byte authentication secret in base64url")
    return value


Endpoint = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), Field(description="https:// URL.")
]
P256dh = Annotated[str, StringConstraints(max_length=128), AfterValidator(_p256_point)]
AuthSecret = Annotated[str, StringConstraints(max_length=64), AfterValidator(_auth_secret)]


class PushKeys(Input):
    p256dh: P256dh = Field(description="The browser's P-256 public key, base64url.")
    auth: AuthSecret = Field(description="The 16-byte authentication secret, base64url.")


class PushSubscriptionIn(Input):
    endpoint: Endpoint
    keys: PushKeys
    expirationTime: float | None = Field(
        default=None, description="Sent by browsers; the push service says when it ends."
    )


class PushEndpointIn(Input):
    endpoint: Endpoint


class PushSubscriptionOut(BaseModel):
    id: str
    endpoint: str
    created_at: datetime


class VapidPublicKeyOut(BaseModel):
    public_key: str = Field(
        description="The application server key for `pushManager.subscribe` "
        "(`applicationServerKey`), base64url of an uncompressed P-256 point."
    )
