"""The start-up check of every library internal the WebRTC side uses, and what falls
back when one is missing.

Run once as the server starts: a missing internal is logged as an error naming the
library, its installed version, the version this server was written for and what is
missing, and the server goes on serving viewers through the library's public path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from types import ModuleType

from signaling.adapters import Incompatible, aioice_private, aiortc_private, pylibsrtp_private

ADAPTERS = (aiortc_private, aioice_private, pylibsrtp_private)
FALLBACKS = {
    "aiortc": "WebRTC viewers are sent media by aiortc's own sender (slower per viewer), "
    "each on a UDP port of its own",
    "aioice": "WebRTC viewers get a UDP port each instead of the shared port",
    "pylibsrtp": "WebRTC viewers are sent media by aiortc's own sender (slower per viewer)",
}

log = logging.getLogger("streamcart.signaling")


@dataclass(frozen=True)
class Internals:
    """Which libraries have the internals their adapter uses."""

    aiortc: bool = True
    aioice: bool = True
    pylibsrtp: bool = True

    @property
    def fast_path(self) -> bool:
        """The shared-frame fan-out (signaling/rtp): aiortc's sender and DTLS internals,
        pylibsrtp's binding."""
        return self.aiortc and self.pylibsrtp

    @property
    def shared_port(self) -> bool:
        """One ICE port for every viewer: aioice's connection and aiortc's way to it."""
        return self.aiortc and self.aioice


async def problem(adapter: ModuleType) -> str | None:
    """What `adapter`'s check finds missing (None: nothing); an unexpected failure of
    the check itself counts as missing too."""
    try:
        await adapter.check()
    except Exception as error:
        library = adapter.LIBRARY
        if isinstance(error, Incompatible):
            return str(error)
        return (
            f"{library} {version(library)} (this server was written for "
            f"{adapter.WRITTEN_FOR}) failed the check of its internals: {error!r}"
        )
    return None


async def check_internals() -> Internals:
    """Check each adapter once (in the event loop: aiortc's peers need one); log each
    failure with what falls back."""
    usable: dict[str, bool] = {}
    for adapter in ADAPTERS:
        found = await problem(adapter)
        usable[adapter.LIBRARY] = found is None
        if found is not None:
            log.error("%s: %s", found, FALLBACKS[adapter.LIBRARY])
    return Internals(**usable)
