"""VAPID (RFC 8292): the application server's key pair and its signed claims, which let
a push service know that every message for a subscription comes from the server the
browser subscribed with."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from py_vapid.utils import b64urlencode

# Push services refuse claims that expire more than 24 hours ahead; a header is signed
# for 12 hours and reused for 11, so a burst to one push service signs once.
CLAIM_SECONDS = 12 * 3600
REUSE_SECONDS = 11 * 3600


def generate_private_key() -> str:
    """A new key in the form STREAMCART_VAPID_PRIVATE_KEY takes: base64url of the raw
    32-byte P-256 private value."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64urlencode(key.private_numbers().private_value.to_bytes(32, "big"))


class VapidSigner:
    def __init__(self, private_key: str, subject: str) -> None:
        if not subject.startswith(("mailto:", "https://")):
            raise ValueError("STREAMCART_VAPID_SUBJECT: a mailto: or https:// contact")
        self._vapid = Vapid02.from_string(private_key)
        self._subject = subject
        self._headers: dict[str, tuple[float, str]] = {}
        point = self._vapid.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = b64urlencode(point)  # what browsers pass to pushManager.subscribe

    def authorization(self, endpoint: str) -> str:
        """`vapid t=<JWT>,k=<public key>` for the endpoint's push service (its origin)."""
        url = urlsplit(endpoint)
        audience = f"{url.scheme}://{url.netloc}"
        now = time.time()
        signed_at, header = self._headers.get(audience, (0.0, ""))
        if now - signed_at > REUSE_SECONDS:
            claims = {"sub": self._subject, "aud": audience, "exp": int(now) + CLAIM_SECONDS}
            header = self._vapid.sign(claims)["Authorization"]
            self._headers[audience] = (now, header)
        return header
