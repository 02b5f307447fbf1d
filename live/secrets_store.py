"""Secrets the embedded mode generates once and keeps beside the database."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("streamcart.settings")


def jwt_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, or one generated on first start and reused after restarts."""
    return _kept(
        configured, data_dir / "jwt-secret", lambda: secrets.token_urlsafe(48), "JWT_SECRET"
    )


def vapid_private_key(configured: str, data_dir: Path, generate: Callable[[], str]) -> str:
    """The configured VAPID key, or one generated on first start and reused after
    restarts: browsers' subscriptions are bound to the key they subscribed with."""
    return _kept(configured, data_dir / "vapid-private-key", generate, "VAPID_PRIVATE_KEY")


def _kept(configured: str, path: Path, generate: Callable[[], str], setting: str) -> str:
    if configured:
        return configured
    if path.exists():
        secret = path.read_text().strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    log.warning(
        "STREAMCART_%s is not set: using a generated secret kept in the data dir; "
        "set it explicitly when running more than one server",
        setting,
        extra={"secret_file": str(path)},
    )
    return secret
