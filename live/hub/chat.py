"""Chat: sending (with the checks that keep a busy stream readable), history, deletion.

A message passes, in order: signed in, joined, session not ended, not banned or muted,
no blocked word, the per-user rate limit and the session's slow mode. The seller and
moderators skip the last two; their role is looked up only when a limit would refuse,
so an ordinary message costs no role query. Rate limit and slow mode are cache keys,
so they hold across processes with Redis.

Messages are documents in `chat` (MongoDB in production, a SQL table by default) and
are broadcast to everyone in the session, the sender included, as `chat:message`.
Deleting marks the document `deleted` and broadcasts `chat:deleted`; deleted messages
are left out of the history a joining viewer gets.

A message that contains the keyword of an open keyword giveaway also enters its sender
(`live.giveaways`); the message goes out all the same.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import StringConstraints

from commerce.accounts.tokens import Principal
from live.hub.access import is_staff, require_joined, require_login, require_open, require_staff
from live.hub.context import HubContext, Member, live_room
from live.hub.dispatch import Events, Payload
from live.hub.moderation import check_may_chat, check_words
from live.sessions.models import LiveSession
from live.sessions.schemas import Id
from storage.documents.port import DocumentStore
from storage.ids import new_id
from storage.web import Problem

CHAT = "chat"
MAX_LENGTH = 300
HISTORY = 50
RATE_LIMIT = 5
RATE_WINDOW = 10.0

events = Events()
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_LENGTH)]


class ChatSendIn(Payload):
    live_session_id: Id
    text: Text


class ChatDeleteIn(Payload):
    live_session_id: Id
    message_id: Id


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored message as clients see it."""
    return {
        "id": doc["id"],
        "live_session_id": doc["live_session_id"],
        "user_id": doc["user_id"],
        "display_name": doc["display_name"],
        "text": doc["text"],
        "created_at": doc["created_at"],
    }


async def recent(documents: DocumentStore, live_session_id: str) -> list[dict[str, Any]]:
    """The last `HISTORY` messages that were not deleted, oldest first."""
    newest = await documents.find(
        CHAT,
        {"live_session_id": live_session_id, "deleted": False},
        sort="created_at",
        descending=True,
        limit=HISTORY,
    )
    return [public(doc) for doc in reversed(newest)]


@events.on("chat:send", ChatSendIn)
async def send(hub: HubContext, member: Member, body: ChatSendIn) -> dict:
    principal = require_login(member)
    require_joined(member, body.live_session_id)
    live = require_open(await hub.live_sessions.get(body.live_session_id))
    await check_may_chat(hub, live, principal.user_id)
    await check_words(hub, live.id, body.text)
    await _keep_pace(hub, principal, live)
    doc = {
        "id": new_id(),
        "live_session_id": live.id,
        "user_id": principal.user_id,
        "display_name": member.display_name,
        "text": body.text,
        # One fixed format (always with microseconds) so the strings sort by time.
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "deleted": False,
    }
    await hub.documents.insert(CHAT, doc)
    message = public(doc)
    await hub.emit("chat:message", message, live_room(live.id))
    await hub.giveaways.enter_by_chat(principal, live.id, body.text)
    return {"message": message}


async def _keep_pace(hub: HubContext, principal: Principal, live: LiveSession) -> None:
    rate_key = f"chat-rate:{live.id}:{principal.user_id}"
    sent = await hub.cache.incr(rate_key, 1, ttl=RATE_WINDOW)
    if sent > RATE_LIMIT and not await is_staff(hub, principal, live):
        raise await _too_fast(
            hub,
            "rate-limited",
            rate_key,
            f"At most {RATE_LIMIT} messages every {RATE_WINDOW:g} seconds.",
        )
    if live.slow_mode_seconds:
        slow_key = f"chat-slow:{live.id}:{principal.user_id}"
        taken = await hub.cache.set_if_absent(slow_key, b"1", ttl=live.slow_mode_seconds)
        if not taken and not await is_staff(hub, principal, live):
            raise await _too_fast(
                hub,
                "slow-mode",
                slow_key,
                f"Slow mode: one message every {live.slow_mode_seconds} seconds.",
            )


async def _too_fast(hub: HubContext, code: str, key: str, message: str) -> Problem:
    left = await hub.cache.ttl(key)
    return Problem(429, code, message, retry_after=max(1, math.ceil(left or 1)))


@events.on("chat:delete", ChatDeleteIn)
async def delete(hub: HubContext, member: Member, body: ChatDeleteIn) -> dict:
    """The author may delete their own message; staff may delete anyone's."""
    principal = require_login(member)
    doc = await hub.documents.get(CHAT, body.message_id)
    if doc is None or doc["live_session_id"] != body.live_session_id or doc["deleted"]:
        raise Problem(404, "message-not-found", "No such message in this chat.")
    if doc["user_id"] != principal.user_id:
        await require_staff(hub, member, body.live_session_id)
    await hub.documents.update(CHAT, doc["id"], {"deleted": True, "deleted_by": principal.user_id})
    gone = {"live_session_id": body.live_session_id, "message_id": doc["id"]}
    await hub.emit("chat:deleted", gone, live_room(body.live_session_id))
    return gone
