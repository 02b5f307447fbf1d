"""The Socket.IO hub: chat, moderation, pins, reactions, viewer counts and live pushes
(stock, orders, carts, flash sales) for live sessions. Events: docs/realtime.md."""

from live.hub.server import HUB, Hub, build_hub

__all__ = ["HUB", "Hub", "build_hub"]
