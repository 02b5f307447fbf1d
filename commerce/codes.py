"""Human-readable codes for orders and payments.

Crockford base32 (no I, L, O, U) so codes survive being read aloud or typed, and a
payment code survives what banks do to transfer text (upper-casing, dropping
punctuation): it is letters and digits only, with a check character that rules
out most false matches in free text.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAYMENT_PREFIX = "SC"
PAYMENT_BODY = 8
PAYMENT_LENGTH = len(PAYMENT_PREFIX) + PAYMENT_BODY + 1
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def random_chars(n: int) -> str:
    # One call to the OS for all characters; 256 is a multiple of 32, so no bias.
    return "".join(ALPHABET[b % len(ALPHABET)] for b in secrets.token_bytes(n))


def order_code(now: datetime | None = None) -> str:
    """ORD-YYMMDD-XXXXXXXX: sortable by day, unguessable within it."""
    day = (now or datetime.now(UTC)).strftime("%y%m%d")
    return f"ORD-{day}-{random_chars(8)}"


def _check_char(body: str) -> str:
    total = sum((i + 1) * ALPHABET.index(c) for i, c in enumerate(body))
    return ALPHABET[total % len(ALPHABET)]


def payment_code() -> str:
    body = random_chars(PAYMENT_BODY)
    return f"{PAYMENT_PREFIX}{body}{_check_char(body)}"


def is_payment_code(candidate: str) -> bool:
    if len(candidate) != PAYMENT_LENGTH or not candidate.startswith(PAYMENT_PREFIX):
        return False
    body, check = candidate[len(PAYMENT_PREFIX) : -1], candidate[-1]
    return all(c in ALPHABET for c in body) and _check_char(body) == check


def payment_codes_in(text: str) -> list[str]:
    """Every valid payment code hidden in transfer text, however the bank mangled it."""
    folded = _NOT_ALNUM.sub("", text.upper())
    found: list[str] = []
    start = folded.find(PAYMENT_PREFIX)
    while start != -1:
        candidate = folded[start : start + PAYMENT_LENGTH]
        if is_payment_code(candidate) and candidate not in found:
            found.append(candidate)
        start = folded.find(PAYMENT_PREFIX, start + 1)
    return found
