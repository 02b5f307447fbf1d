"""The start-up check of the python-engineio and python-socketio internals the hub uses.

Both libraries are pinned exactly, and each one's internals are used only in its
adapter (`engineio_private`, `socketio_private`). `check_internals()` runs once, when the hub is
built: an adapter that finds something missing is logged (the library, its installed
version, the version the adapter was written for, and what is missing) and left unused,
and the hub serves Socket.IO on that library's public path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import version
from types import ModuleType

from live.hub import engineio_private, socketio_private

log = logging.getLogger("streamcart.hub.internals")


@dataclass(frozen=True)
class Internals:
    """Which adapters the hub may use."""

    engineio: bool
    socketio: bool

    @property
    def fast_broadcast(self) -> bool:
        """The one-frame broadcast needs both."""
        return self.engineio and self.socketio


def check_internals() -> Internals:
    return Internals(engineio=usable(engineio_private), socketio=usable(socketio_private))


def usable(adapter: ModuleType) -> bool:
    """Whether this installed library has everything `adapter` uses (logged when not)."""
    problem = report(adapter)
    if problem is not None:
        log.error("%s; the hub takes its public path", problem)
        return False
    installed = version(adapter.DISTRIBUTION)
    if installed != adapter.WRITTEN_FOR:
        log.warning(
            "%s %s is installed, %s was written for %s (its internals were all found)",
            adapter.DISTRIBUTION,
            installed,
            adapter.__name__,
            adapter.WRITTEN_FOR,
        )
    return True


def report(adapter: ModuleType) -> str | None:
    """What `adapter` misses in the installed library, naming it and its version; None
    when nothing is missing."""
    gaps = adapter.missing()
    if not gaps:
        return None
    return (
        f"{adapter.DISTRIBUTION} {version(adapter.DISTRIBUTION)} lacks {', '.join(gaps)} "
        f"({adapter.__name__} was written for {adapter.WRITTEN_FOR})"
    )
