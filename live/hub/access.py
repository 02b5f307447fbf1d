"""Who may do what in the hub, checked in one place.

Guests (no token) may watch; signing in is needed to chat or react; the seller, the
shop's moderators and admins ("staff", from `LiveSessionService.role`) moderate and pin.
"""

from __future__ import annotations

from commerce.accounts.tokens import Principal
from live.hub.context import HubContext, Member
from live.sessions.models import LiveSession, LiveStatus
from storage.web import Problem


def require_login(member: Member) -> Principal:
    if member.principal is None:
        raise Problem(401, "login-required", "Sign in to do this; guests can only watch.")
    return member.principal


def require_joined(member: Member, live_session_id: str) -> None:
    """Acting in a session needs `session:join` first, so nobody posts into rooms unseen."""
    if live_session_id not in member.joined:
        raise Problem(409, "not-joined", "Join the live session first (session:join).")


def require_open(live: LiveSession) -> LiveSession:
    if live.status == LiveStatus.ENDED:
        raise Problem(409, "live-session-ended", "This live session has ended.")
    return live


async def is_staff(hub: HubContext, principal: Principal, live: LiveSession) -> bool:
    return await hub.live_sessions.role(principal, live) is not None


async def require_staff(hub: HubContext, member: Member, live_session_id: str) -> LiveSession:
    """The session, when the member is its seller, a moderator of its shop or an admin."""
    principal = require_login(member)
    live = await hub.live_sessions.get(live_session_id)
    if not await is_staff(hub, principal, live):
        raise Problem(403, "forbidden", "Only the seller and the shop's moderators may do this.")
    return live
