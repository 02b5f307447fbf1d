"""The private parts of pylibsrtp that protect a viewer's packets in place.

pylibsrtp's `Session.protect` copies each packet in and out of new objects; the frame
protector (signaling/rtp/srtp_frames.py) calls libsrtp's `srtp_protect` itself, through
pylibsrtp's own cffi binding (`pylibsrtp._binding`), on the session's libsrtp context
(`Session._srtp`), so no second copy of libsrtp is loaded. The C send path
(signaling/rtp/_sendpath.c) gets the same functions and context as addresses, named in
one `SrtpAddresses`. `check()` (at start-up) and `RawSession` (per viewer) make sure
they are there and take the arguments they are called with.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import pylibsrtp
from pylibsrtp import Policy, Session

from signaling.adapters import Incompatible

LIBRARY = "pylibsrtp"
WRITTEN_FOR = "1.0.0"
PROTECT_SIGNATURE = ("struct srtp_ctx_t_ *", "void *", "int *")
PROTECT_FUNCTIONS = ("srtp_protect", "srtp_protect_rtcp")


def incompatible(missing: str) -> Incompatible:
    return Incompatible(LIBRARY, WRITTEN_FOR, missing)


class SrtpAddresses(NamedTuple):
    """libsrtp's protect functions and one session's context, as the C send path takes
    them: by name, never by position."""

    protect: int
    protect_rtcp: int
    context: int


def binding() -> tuple[Any, Any]:
    """pylibsrtp's cffi `ffi` and `lib`, with protect functions of the expected types."""
    module = getattr(pylibsrtp, "_binding", None)
    ffi, lib = getattr(module, "ffi", None), getattr(module, "lib", None)
    if ffi is None or lib is None:
        raise incompatible("_binding.ffi or _binding.lib")
    for name in PROTECT_FUNCTIONS:
        function = getattr(lib, name, None)
        if function is None:
            raise incompatible(f"_binding.lib.{name}")
        signature = tuple(arg.cname for arg in ffi.typeof(function).args)
        if signature != PROTECT_SIGNATURE:
            raise incompatible(f"{name}{PROTECT_SIGNATURE} (it takes {signature})")
    return ffi, lib


class RawSession:
    """One pylibsrtp Session's libsrtp context, to protect packets in a buffer of ours."""

    def __init__(self, session: Session) -> None:
        self.ffi, lib = binding()
        context = getattr(session, "_srtp", None)
        if context is None:
            raise incompatible("Session._srtp")
        self._session = session  # owns the libsrtp context: kept alive while used here
        self.context = context[0]
        self.protect = lib.srtp_protect  # (context, packet, int * length) -> status
        self.addresses = SrtpAddresses(
            protect=self._address(self.ffi.addressof(lib, "srtp_protect")),
            protect_rtcp=self._address(self.ffi.addressof(lib, "srtp_protect_rtcp")),
            context=self._address(self.context),
        )

    def _address(self, pointer: Any) -> int:
        return int(self.ffi.cast("uintptr_t", pointer))

    def pointer(self, buffer: bytearray) -> Any:
        """A `void *` to `buffer` (which must not be resized while it is used)."""
        return self.ffi.from_buffer(buffer)

    def new_length(self) -> Any:
        """An `int *` for the packet length srtp_protect reads and writes."""
        return self.ffi.new("int *")


async def check() -> None:
    """Raise Incompatible unless a Session made here has what `RawSession` uses."""
    policy = Policy(
        key=os.urandom(30),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    )
    RawSession(Session(policy))
