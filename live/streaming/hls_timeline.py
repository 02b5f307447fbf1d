"""Shoppable HLS: a session's pins and flash sales as EXT-X-DATERANGE tags.

A pin is one date range from the moment it was pinned, closed by END-DATE when it is
unpinned; a flash sale is one while it runs (END-DATE when it ended or was cancelled),
announced before that by a `scheduled` range from when it was created to its start.
The moments are wall-clock, the clock the video's program date-time is on, so a player
shows the product at the frame it was pinned on. Each range carries what a player needs
to draw the product (id, name, price; the flash price and end) as `X-` attributes.

The entries come from the session's timeline (pins and flash sales in time order, as
replays get it); the live playlist asks for them on every reload, so they are cached
for a fraction of a part per session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.catalog.models import Product
from live.sessions.models import FlashSale, LiveProduct
from live.streaming.outputs import TimelineSource
from media.hls.dateranges import DateRange, program_date_time

PIN_CLASS = "com.streamcart.pin"
FLASH_CLASS = "com.streamcart.flash"
SCHEDULED_CLASS = "com.streamcart.flash.scheduled"
RANGED = frozenset({"pinned", "unpinned", "flash_started", "flash_ended"})  # date ranges
CACHE_SECONDS = 0.5  # about a part: a pin shows up in the next playlist or the one after


@dataclass(frozen=True, slots=True)
class Mark:
    """One timeline entry: `kind` is pinned, unpinned, flash_started or flash_ended."""

    at: datetime
    kind: str
    product_id: str
    flash_sale_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Product:
    name: str
    price: int


class HlsTimeline:
    """Date ranges of a live session (`dateranges`, cached) and of a recording of it
    (`replay`, from the timeline saved beside the recording)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        timeline: TimelineSource,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._timeline = timeline
        self._cache_seconds = cache_seconds
        self._cached: dict[str, tuple[float, asyncio.Future[list[DateRange]]]] = {}

    async def dateranges(self, live_session_id: str) -> list[DateRange]:
        """The session's ranges so far; concurrent playlist requests share one query."""
        now = time.monotonic()
        cached = self._cached.get(live_session_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return await asyncio.shield(cached[1])
        self._forget_expired(now)
        future = asyncio.ensure_future(self._load(live_session_id))
        self._cached[live_session_id] = (now, future)
        try:
            return await asyncio.shield(future)
        except Exception:
            self._cached.pop(live_session_id, None)  # the next request tries again
            raise

    async def replay(
        self, live_session_id: str, started: datetime, entries: Iterable[Mapping[str, Any]]
    ) -> list[DateRange]:
        """The ranges of one recording: `entries` as saved beside it, `at_ms` on its clock,
        which began at `started`."""
        marks = [
            Mark(
                started + timedelta(milliseconds=entry["at_ms"]),
                entry["kind"],
                entry["data"]["product_id"],
                entry["data"].get("flash_sale_id"),
            )
            for entry in entries
            if entry["kind"] in RANGED
        ]
        return await self._ranges(live_session_id, marks)

    async def _load(self, live_session_id: str) -> list[DateRange]:
        entries = await self._timeline.timeline(live_session_id)
        marks = [
            Mark(entry.at, entry.kind, entry.product_id, entry.flash_sale_id)
            for entry in entries
            if entry.kind in RANGED
        ]
        return await self._ranges(live_session_id, marks)

    async def _ranges(self, live_session_id: str, marks: list[Mark]) -> list[DateRange]:
        async with self._sessions() as session:
            sales = {
                sale.id: sale
                for sale in await session.scalars(
                    select(FlashSale).where(FlashSale.live_session_id == live_session_id)
                )
            }
            products = await _products(
                session,
                live_session_id,
                {mark.product_id for mark in marks} | {sale.product_id for sale in sales.values()},
            )
        return date_ranges(marks, products, sales)

    def _forget_expired(self, now: float) -> None:
        for live_session_id, (at, _) in list(self._cached.items()):
            if now - at >= self._cache_seconds:
                del self._cached[live_session_id]


async def _products(
    session: AsyncSession, live_session_id: str, product_ids: set[str]
) -> dict[str, _Product]:
    """Each product's name and its price in this session (the live price, if set)."""
    if not product_ids:
        return {}
    rows = await session.execute(
        select(Product.id, Product.name, Product.base_price, LiveProduct.live_price)
        .outerjoin(
            LiveProduct,
            and_(
                LiveProduct.product_id == Product.id,
                LiveProduct.live_session_id == live_session_id,
            ),
        )
        .where(Product.id.in_(product_ids))
    )
    return {
        product_id: _Product(name, base_price if live_price is None else live_price)
        for product_id, name, base_price, live_price in rows
    }


def date_ranges(
    marks: Iterable[Mark], products: Mapping[str, _Product], sales: Mapping[str, FlashSale]
) -> list[DateRange]:
    """Pair each start with its end: a pin with the next unpin of its product, a flash
    sale's start with its end; a sale announced ahead is `scheduled` from its creation
    until it starts (or is cancelled). A range once listed stays, as the specification
    wants: later it only gains its END-DATE."""
    ranges: dict[str, DateRange] = {}
    open_pins: dict[str, str] = {}
    started: set[str] = set()
    for mark in marks:
        product = _attributes(mark.product_id, products)
        if mark.kind == "pinned":
            range_id = f"pin-{mark.product_id}-{int(mark.at.timestamp() * 1000)}"
            ranges[range_id] = DateRange(range_id, mark.at, PIN_CLASS, attributes=product)
            open_pins[mark.product_id] = range_id
        elif mark.kind == "unpinned" and mark.product_id in open_pins:
            _close(ranges, open_pins.pop(mark.product_id), mark.at)
        elif mark.flash_sale_id in sales:
            range_id = f"flash-{mark.flash_sale_id}"
            if mark.kind == "flash_started":
                sale = sales[mark.flash_sale_id]
                attributes = {**product, **_sale_attributes(sale)}
                ranges[range_id] = DateRange(range_id, mark.at, FLASH_CLASS, attributes=attributes)
                started.add(sale.id)
            elif range_id in ranges:
                _close(ranges, range_id, mark.at)
    for sale in sales.values():
        if sale.created_at >= sale.starts_at:
            continue  # started at once: never announced ahead
        range_id = f"flash-{sale.id}-scheduled"
        attributes = {**_attributes(sale.product_id, products), **_sale_attributes(sale)}
        attributes["STARTS-AT"] = program_date_time(sale.starts_at)
        ended = sale.starts_at if sale.id in started else sale.cancelled_at
        ranges[range_id] = DateRange(
            range_id, sale.created_at, SCHEDULED_CLASS, ended, attributes=attributes
        )
    return sorted(ranges.values(), key=lambda item: (item.start, item.id))


def _close(ranges: dict[str, DateRange], range_id: str, end: datetime) -> None:
    opened = ranges[range_id]
    ranges[range_id] = DateRange(opened.id, opened.start, opened.cls, end, opened.attributes)


def _attributes(product_id: str, products: Mapping[str, _Product]) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"PRODUCT-ID": product_id}
    product = products.get(product_id)
    if product is not None:
        attributes["NAME"] = product.name
        attributes["PRICE"] = product.price
    return attributes


def _sale_attributes(sale: FlashSale) -> dict[str, str | int]:
    return {
        "FLASH-SALE-ID": sale.id,
        "FLASH-PRICE": sale.flash_price,
        "ENDS-AT": program_date_time(sale.ends_at),
    }
