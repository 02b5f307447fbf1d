"""WebRTC for viewers: WHEP over HTTP (and Socket.IO), aiortc peers fed from `media`."""

from signaling.whep import WhepAnswer, WhepService

__all__ = ["WhepAnswer", "WhepService"]
