"""WebRTC signaling over the socket, for apps that prefer it to WHEP over HTTP.

`webrtc:offer` is the WHEP POST (the answer comes back in the ack) and `webrtc:close`
the DELETE; the same `WhepService` serves both, so the viewer limit and the counts are
shared. A socket may close only the peers it opened, and `close_socket_peers` (called
on disconnect) closes them all, so a vanished app does not keep a viewer place.
"""

from __future__ import annotations

from pydantic import Field

from live.hub.context import HubContext, Member
from live.hub.dispatch import Events, Payload
from live.sessions.schemas import Id
from signaling.offers import MAX_SDP_BYTES

events = Events()


class OfferIn(Payload):
    live_session_id: Id
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class CloseIn(Payload):
    resource_id: str = Field(min_length=1, max_length=64)


@events.on("webrtc:offer", OfferIn)
async def offer(hub: HubContext, member: Member, body: OfferIn) -> dict:
    answer = await hub.whep.offer(body.live_session_id, body.sdp, owner=member.sid)
    return {"resource_id": answer.resource_id, "sdp": answer.sdp}


@events.on("webrtc:close", CloseIn)
async def close(hub: HubContext, member: Member, body: CloseIn) -> dict:
    await hub.whep.delete(body.resource_id, owner=member.sid)
    return {}


async def close_socket_peers(hub: HubContext, member: Member) -> None:
    """Every peer this socket opened; call it when the socket disconnects."""
    await hub.whep.close_owned(member.sid)
