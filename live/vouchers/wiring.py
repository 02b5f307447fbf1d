"""Builds the vouchers on the app: the shop's voucher service, the drops and their
gatekeeper, and the consumer that gives a cancelled or expired order's voucher back."""

from __future__ import annotations

from aiohttp import web

from commerce.shops.access import ShopTeams
from commerce.vouchers import redeem
from commerce.vouchers.routes import VOUCHERS
from commerce.vouchers.service import VoucherService
from live.sessions.routes import LIVE_SESSIONS
from live.settings import Settings
from live.vouchers.gatekeeper import VoucherGatekeeper, voucher_stock
from live.vouchers.routes import VOUCHER_DROPS
from live.vouchers.service import VoucherDrops
from storage.backends import Backends

VOUCHER_GATEKEEPER = web.AppKey("voucher_gatekeeper", VoucherGatekeeper)


def build_vouchers(app: web.Application, settings: Settings, backends: Backends) -> None:
    """Needs `app[LIVE_SESSIONS]`. The gatekeeper and the consumer start once the
    backends have (startup runs after the app's cleanup contexts) and stop before."""
    keeper = VoucherGatekeeper(backends.sessions, backends.gate, settings.flash_pending_seconds)
    app[VOUCHER_GATEKEEPER] = keeper
    app[VOUCHERS] = VoucherService(
        backends.sessions, on_disabled=lambda voucher_id: keeper.resync(voucher_stock(voucher_id))
    )
    app[VOUCHER_DROPS] = VoucherDrops(
        backends.sessions, app[LIVE_SESSIONS], keeper, ShopTeams(backends.sessions)
    )
    returns = redeem.VoucherReturns(backends.sessions)

    async def start(app: web.Application) -> None:
        await backends.bus.subscribe(redeem.CONSUMER, redeem.PATTERNS, returns.on_order_closed)
        await keeper.start()

    async def stop(app: web.Application) -> None:
        await keeper.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
