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
from commerce.accounts.revocations import FAMILY, TOKEN, USER, Revoked
from commerce.accounts.tokens import Principal
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
        if member.principal is not None:
            for room in (user_room(member.principal.user_id), *_login_rooms(member.principal)):
                await hub.sio.enter_room(sid, room)

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
        task = asyncio.create_task(_disconnect_revoked(hub, revoked))
        ending.add(task)
        task.add_done_callback(ending.discard)

    hub.accounts.revocations.listen(on_revoked)


def _login_rooms(principal: Principal) -> list[str]:
    """The rooms that name the socket's token and login (refresh family), so a logout or
    a replayed refresh token ends the sockets that token or login opened."""
    rooms = [_revoked_room(TOKEN, principal.token_id)]
    if principal.family_id is not None:
        rooms.append(_revoked_room(FAMILY, principal.family_id))
    return rooms


def _revoked_room(kind: str, subject: str) -> str:
    return user_room(subject) if kind == USER else f"{kind}:{subject}"


async def _disconnect_revoked(hub: HubContext, revoked: Revoked) -> None:
    """The sockets a revocation covers end now, on this process (every process hears of
    the revocation and closes its own): a disabled or deleted user's, or those opened
    with a logged-out or replayed login's tokens."""
    if revoked.kind == USER:
        error = {"code": "account-disabled", "message": "This account was disabled."}
    else:
        error = {"code": "login-ended", "message": "This login ended; sign in again."}
    room = _revoked_room(revoked.kind, revoked.subject)
    sids = [sid for sid, _ in hub.sio.manager.get_participants("/", room)]
    for sid in sids:
        await hub.sio.emit("error", error, to=sid)
        await hub.sio.disconnect(sid)
    if sids:
        log.info("sockets of a revoked login closed", extra={"kind": revoked.kind})


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
