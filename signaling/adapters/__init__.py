"""The private internals of aiortc, aioice and pylibsrtp, one module per library.

The WebRTC fast path (signaling/rtp) and the shared ICE port reach past these libraries'
public APIs; every such use lives in `aiortc_private`, `aioice_private` or
`pylibsrtp_private`, and nowhere else. Each declares the version it was written for
(`WRITTEN_FOR`, the version pinned in pyproject.toml) and a `check()` that start-up runs
once (signaling/adapters/checks.py): where an internal is missing, the error names the
library, its installed version and what is missing, and viewers are served through the
library's public path instead.
"""

from __future__ import annotations

from importlib.metadata import version


class Incompatible(RuntimeError):
    """An installed library lacks an internal that an adapter relies on."""

    def __init__(self, library: str, written_for: str, missing: str) -> None:
        self.library = library
        self.installed = version(library)
        self.missing = missing
        super().__init__(
            f"{library} {self.installed} (this server was written for {written_for}) "
            f"has no {missing}"
        )


def missing_attributes(target: object, names: tuple[str, ...]) -> str | None:
    """`Type.a, b` for the names `target` lacks; None when it has them all."""
    missing = [name for name in names if not hasattr(target, name)]
    if not missing:
        return None
    owner = target.__name__ if isinstance(target, type) else type(target).__name__
    return f"{owner}.{', '.join(missing)}"
