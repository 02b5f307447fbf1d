"""Secrets the embedded mode generates once and keeps beside the database."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger("streamcart.settings")


def jwt_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, or one generated on first start and reused after restarts."""
    if configured:
        return configured
    path = data_dir / "jwt-secret"
    if path.exists():
        secret = path.read_text().strip()
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    log.warning(
        "STREAMCART_JWT_SECRET is not set: using a generated secret kept in the data dir; "
        "set it explicitly when running more than one server",
        extra={"secret_file": str(path)},
    )
    return secret
