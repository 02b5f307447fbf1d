"""Every package's tables on one metadata: what migrations must produce."""

from sqlalchemy import MetaData

import commerce.accounts.models
import commerce.carts.models
import commerce.catalog.models
import commerce.follows.models
import commerce.mail.outbox
import commerce.notifications.models
import commerce.notifications.push_models
import commerce.orders.models
import commerce.payments.models
import commerce.shops.models
import commerce.vouchers.models
import live.analytics.models
import live.auctions.models
import live.giveaways.models
import live.sessions.models
import storage.bus.processed
import storage.documents.table
import storage.outbox.table
from storage.sql import Base

TABLE_MODULES = (
    commerce.accounts.models,
    commerce.carts.models,
    commerce.catalog.models,
    commerce.follows.models,
    commerce.mail.outbox,
    commerce.notifications.models,
    commerce.notifications.push_models,
    commerce.orders.models,
    commerce.payments.models,
    commerce.shops.models,
    commerce.vouchers.models,
    live.analytics.models,
    live.auctions.models,
    live.giveaways.models,
    live.sessions.models,
    storage.bus.processed,
    storage.documents.table,
    storage.outbox.table,
)


def metadata() -> MetaData:
    return Base.metadata
