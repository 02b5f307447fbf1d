"""Connecting and disconnecting: who the socket belongs to, and cleaning up after it.

`auth` is `{"token": "<access token>"}` for a signed-in user, or absent / `{}` for a
guest. A token that does not verify refuses the connection: quietly turning a user
with an expired token into a guest would only surface later, as a puzzling
`login-required` on their first chat message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from socketio.exceptions import ConnectionRefusedError as Refused

from commerce.accounts.auth import authenticate
from commerce.accounts.revocations import USER, Revoked
from live.hub.context import HubContext, Member, user_room
from live.hub.rooms import stop_watching
from live.hub.webrtc import close_socket_peers
from storage.web import Problem

log = logging.getLogger("streamcart.hub")
GUEST_NAME = "Guest"


def attach(hub: HubContext) -> None:
    async def connect(sid: str, environ: dict, auth: Any = None) -> None:
        try:
            member = await _member(hub, sid, auth)
        except Problem as problem:
            raise Refused(problem.detail or problem.title, {"code": problem.code}) from None
        except Exception:
            log.exception("hub connect failed", extra={"sid": sid})
            raise Refused("Could not connect; try again.", {"code": "internal-error"}) from None
        await hub.sio.save_session(sid, {"member": member})
        if member.user_id is not None:
            await hub.sio.enter_room(sid, user_room(member.user_id))

    async def disconnect(sid: str, reason: Any = None) -> None:
        try:
            member = await hub.member(sid)
            for live_session_id in list(member.joined):
                await stop_watching(hub, member, live_session_id)
            await close_socket_peers(hub, member)
        except Exception:
            log.exception("hub disconnect cleanup failed", extra={"sid": sid})

    hub.sio.on("connect", handler=connect)
    hub.sio.on("disconnect", handler=disconnect)
    ending: set[asyncio.Task] = set()

    def on_revoked(revoked: Revoked) -> None:
        if revoked.kind == USER:
            task = asyncio.create_task(_disconnect_user(hub, revoked.subject))
            ending.add(task)
            task.add_done_callback(ending.discard)

    hub.accounts.revocations.listen(on_revoked)


async def _disconnect_user(hub: HubContext, user_id: str) -> None:
    """A disabled or deleted user's sockets on this process end now (every process hears
    of the revocation and closes its own)."""
    room = user_room(user_id)
    sids = [sid for sid, _ in hub.sio.manager.get_participants("/", room)]
    for sid in sids:
        await hub.sio.emit(
            "error",
            {"code": "account-disabled", "message": "This account was disabled."},
            to=sid,
        )
        await hub.sio.disconnect(sid)
    if sids:
        log.info("sockets of a revoked user closed", extra={"user_id": user_id})


async def _member(hub: HubContext, sid: str, auth: Any) -> Member:
    if auth is None or auth == {}:
        return Member(sid, None, GUEST_NAME)
    if not isinstance(auth, dict) or set(auth) != {"token"} or not isinstance(auth["token"], str):
        raise Problem(400, "bad-auth", 'Send auth as {"token": "<access token>"} or nothing.')
    principal = await authenticate(hub.accounts, auth["token"])
    name = await hub.accounts.active_name(principal.user_id)
    if name is None:
        raise Problem(401, "invalid-token", "The account behind this token is not active.")
    return Member(sid, principal, name)
