"""The Socket.IO hub: chat, moderation, pins, reactions, viewer counts and live pushes
(stock, orders, carts, flash sales) for live sessions. Events: docs/realtime.md.

Above `live.sessions` and `live.flash`, below `live.analytics`: the visits it notes go to
the `Visits` it is handed (docs/architecture.md, "Inside `live`").
"""

from live.hub.server import HUB, Hub, build_hub

__all__ = ["HUB", "Hub", "build_hub"]
