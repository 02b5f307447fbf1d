"""The draw: a deterministic function of the revealed seed and the published entries.

Each entrant's ticket is HMAC-SHA256(key=seed, message=user id); the winners are the
`count` entrants with the smallest tickets (as hex strings), smallest first. The order
the entries were made or listed in does not matter, and nobody can steer a ticket
without knowing the seed, which is committed (its SHA-256 published) before anyone
enters. docs/giveaways.md has a script that recomputes this from the public JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

ALGORITHM = "hmac-sha256-smallest"


def new_seed() -> str:
    """32 random bytes, as hex."""
    return secrets.token_bytes(32).hex()


def commitment(seed: str) -> str:
    """SHA-256 of the seed's 32 bytes, as hex: published at the start."""
    return hashlib.sha256(bytes.fromhex(seed)).hexdigest()


def ticket(seed: str, user_id: str) -> str:
    return hmac.new(bytes.fromhex(seed), user_id.encode(), hashlib.sha256).hexdigest()


def winners(seed: str, user_ids: Iterable[str], count: int) -> list[str]:
    """The winning user ids, best ticket first."""
    return sorted(set(user_ids), key=lambda user_id: ticket(seed, user_id))[:count]
