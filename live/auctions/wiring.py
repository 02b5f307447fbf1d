"""Building the auction service on the app. It starts (its closer's ticks) once the
backends have started (`on_startup` runs after every cleanup context, the backends'
among them) and stops before they close (`on_shutdown` runs before any cleanup)."""

from __future__ import annotations

from aiohttp import web

from commerce.orders.routes import CHECKOUT
from commerce.shops.access import ShopTeams
from live.auctions.bidding import BidWriter
from live.auctions.closing import AuctionCloser
from live.auctions.routes import AUCTIONS
from live.auctions.service import AuctionService
from live.sessions.routes import LIVE_SESSIONS
from storage.backends import Backends


def build_auctions(app: web.Application, backends: Backends) -> None:
    """After the checkout and live sessions are on the app, before the hub (which
    announces accepted bids: `AuctionService.announce_through`)."""
    app[AUCTIONS] = AuctionService(
        backends.sessions,
        app[LIVE_SESSIONS],
        ShopTeams(backends.sessions),
        BidWriter(backends.sessions, backends.driver_pool),
        AuctionCloser(backends.sessions, app[CHECKOUT]),
    )
    app.on_startup.append(lambda app: app[AUCTIONS].start())
    app.on_shutdown.append(lambda app: app[AUCTIONS].stop())
