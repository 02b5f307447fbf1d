"""Building the giveaways on the app. The drawer ticks once the backends have started
(`on_startup` runs after every cleanup context, the backends' among them) and stops
before they close (`on_shutdown` runs before any cleanup)."""

from __future__ import annotations

from aiohttp import web

from commerce.orders.routes import CHECKOUT
from commerce.shops.access import ShopTeams
from live.giveaways.drawer import GiveawayDrawer
from live.giveaways.prizes import PrizeClaims
from live.giveaways.routes import GIVEAWAYS, PRIZES
from live.giveaways.service import GiveawayService
from live.sessions.routes import LIVE_SESSIONS
from storage.backends import Backends


def build_giveaways(app: web.Application, backends: Backends) -> None:
    """After the checkout and live sessions are on the app, before the hub (whose chat
    enters keyword giveaways)."""
    app[GIVEAWAYS] = GiveawayService(
        backends.sessions, app[LIVE_SESSIONS], ShopTeams(backends.sessions)
    )
    app[PRIZES] = PrizeClaims(backends.sessions)
    drawer = GiveawayDrawer(backends.sessions, app[CHECKOUT])
    app.on_startup.append(lambda app: drawer.start())
    app.on_shutdown.append(lambda app: drawer.stop())
