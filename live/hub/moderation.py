"""Chat moderation by the session's staff: mute (timeout), ban, slow mode, blocked words.

Every rule is stored outside the process so it holds across reconnects and replicas:

- a mute is a cache key with the mute's duration as TTL (`chat-mute:{session}:{user}`),
  per session; it simply expires;
- a ban is a document in `chat_bans`, per shop, so a banned user stays banned in the
  shop's later streams too, until a staff member lifts it (`chat:unban`);
- slow mode is `LiveSession.slow_mode_seconds` in SQL, announced as `chat:slow_mode`;
- the blocked words of a session are one document in `chat_blocklists`. A word matches
  as a whole word or phrase, case-insensitively and with diacritics folded
  (`commerce.text.fold`), so "Lừa đảo" blocks "lua dao" while "class" does not trip
  over a blocked "ass".

Banned and muted users can still watch; only their messages are refused. They hear
of a mute or ban at once, on their own sockets (`chat:muted`, `chat:banned`,
`chat:unbanned`), not only when their next message is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field, StringConstraints
from sqlalchemy import update

from commerce.text import fold
from live.hub.access import require_open, require_staff
from live.hub.context import HubContext, Member, live_room, user_room
from live.hub.dispatch import Events, Payload
from live.sessions.models import LiveSession
from live.sessions.schemas import Id
from storage.documents.port import DuplicateDocument
from storage.web import Problem

BANS = "chat_bans"
BLOCKLISTS = "chat_blocklists"
MAX_MUTE_SECONDS = 7 * 24 * 3600
MAX_SLOW_MODE_SECONDS = 3600

events = Events()
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class MuteIn(Payload):
    live_session_id: Id
    user_id: Id
    seconds: Annotated[int, Field(ge=0, le=MAX_MUTE_SECONDS, description="0 lifts the mute")]


class UserIn(Payload):
    live_session_id: Id
    user_id: Id


class SlowModeIn(Payload):
    live_session_id: Id
    seconds: Annotated[int, Field(ge=0, le=MAX_SLOW_MODE_SECONDS)]


class BlocklistIn(Payload):
    live_session_id: Id
    words: Annotated[list[Word], Field(max_length=200)] | None = Field(
        default=None, description="Replaces the list; omit to read it."
    )


async def check_may_chat(hub: HubContext, live: LiveSession, user_id: str) -> None:
    if await hub.documents.get(BANS, _ban_id(live.shop_id, user_id)) is not None:
        raise Problem(403, "banned", "You are banned from this shop's chat.")
    left = await hub.cache.ttl(_mute_key(live.id, user_id))
    if left is not None:
        raise Problem(
            403, "muted", "You are muted for a while.", retry_after=max(1, math.ceil(left))
        )


async def check_words(hub: HubContext, live_session_id: str, text: str) -> None:
    words = await blocked_words(hub, live_session_id)
    if words and _blocked_pattern(words).search(fold(text)):
        raise Problem(422, "blocked-word", "The message contains a word blocked in this chat.")


async def blocked_words(hub: HubContext, live_session_id: str) -> list[str]:
    doc = await hub.documents.get(BLOCKLISTS, live_session_id)
    return [] if doc is None else doc["words"]


def _blocked_pattern(words: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(fold(word)) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _ban_id(shop_id: str, user_id: str) -> str:
    """One document per (shop, user): banning twice is a no-op, unbanning one delete."""
    return hashlib.sha256(f"{shop_id}:{user_id}".encode()).hexdigest()


def _mute_key(live_session_id: str, user_id: str) -> str:
    return f"chat-mute:{live_session_id}:{user_id}"


@events.on("chat:mute", MuteIn)
async def mute(hub: HubContext, member: Member, body: MuteIn) -> dict:
    live = await require_staff(hub, member, body.live_session_id)
    key = _mute_key(live.id, body.user_id)
    if body.seconds == 0:
        await hub.cache.delete(key)
    else:
        await hub.cache.set(key, b"1", ttl=body.seconds)
    until = datetime.now(UTC) + timedelta(seconds=body.seconds) if body.seconds else None
    notice = {"live_session_id": live.id, "seconds": body.seconds, "until": _iso(until)}
    await hub.emit("chat:muted", notice, user_room(body.user_id))
    return {"user_id": body.user_id, "seconds": body.seconds}


@events.on("chat:ban", UserIn)
async def ban(hub: HubContext, member: Member, body: UserIn) -> dict:
    live = await require_staff(hub, member, body.live_session_id)
    with contextlib.suppress(DuplicateDocument):  # banning twice changes nothing
        await hub.documents.insert(
            BANS,
            {
                "id": _ban_id(live.shop_id, body.user_id),
                "shop_id": live.shop_id,
                "user_id": body.user_id,
                "live_session_id": live.id,
                "by": member.user_id,
                "created_at": _iso(datetime.now(UTC)),
            },
        )
    await _tell_banned(hub, "chat:banned", live, body.user_id)
    return {"user_id": body.user_id}


@events.on("chat:unban", UserIn)
async def unban(hub: HubContext, member: Member, body: UserIn) -> dict:
    live = await require_staff(hub, member, body.live_session_id)
    await hub.documents.delete(BANS, _ban_id(live.shop_id, body.user_id))
    await _tell_banned(hub, "chat:unbanned", live, body.user_id)
    return {"user_id": body.user_id}


async def _tell_banned(hub: HubContext, event: str, live: LiveSession, user_id: str) -> None:
    """To the user's own sockets: a ban covers the whole shop, so it names the shop too."""
    notice = {"live_session_id": live.id, "shop_id": live.shop_id}
    await hub.emit(event, notice, user_room(user_id))


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="microseconds")


@events.on("chat:slow_mode", SlowModeIn)
async def slow_mode(hub: HubContext, member: Member, body: SlowModeIn) -> dict:
    live = require_open(await require_staff(hub, member, body.live_session_id))
    async with hub.sessions.begin() as session:
        await session.execute(
            update(LiveSession)
            .where(LiveSession.id == live.id)
            .values(slow_mode_seconds=body.seconds)
        )
    change = {"live_session_id": live.id, "seconds": body.seconds}
    await hub.emit("chat:slow_mode", change, live_room(live.id))
    return {"seconds": body.seconds}


@events.on("chat:blocklist", BlocklistIn)
async def blocklist(hub: HubContext, member: Member, body: BlocklistIn) -> dict:
    live = await require_staff(hub, member, body.live_session_id)
    if body.words is None:
        return {"words": await blocked_words(hub, live.id)}
    words = list(dict.fromkeys(body.words))
    if not await hub.documents.update(BLOCKLISTS, live.id, {"words": words}):
        try:
            await hub.documents.insert(BLOCKLISTS, {"id": live.id, "words": words})
        except DuplicateDocument:  # another staff member created it a moment ago
            await hub.documents.update(BLOCKLISTS, live.id, {"words": words})
    return {"words": words}
