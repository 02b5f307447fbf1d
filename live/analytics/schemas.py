"""What the stats endpoint and the timeline answer (documented in OpenAPI from here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ViewerStatsOut(BaseModel):
    current: int = Field(description="Viewers in the session now (from live presence).")
    peak: int = Field(description="Most viewers watching at one instant while live.")
    unique: int = Field(description="Distinct viewers while live: users once, each guest once.")
    unique_signed_in: int = Field(description="Distinct signed-in users among them.")
    watch_seconds_total: float = Field(
        description="Sum over viewers of the time they watched while live; a viewer's "
        "tabs open at once count once (union of their visits)."
    )
    watch_seconds_average: float = Field(description="watch_seconds_total / unique.")


class OrderStatsOut(BaseModel):
    count: int = Field(description="Orders placed from this session, whatever their status.")
    paid: int = Field(
        description="Of those, orders paid or further on (paid, processing, shipped, "
        "delivered, completed); cash-on-delivery orders count from placement."
    )
    revenue: int = Field(description="Sum of the paid orders' totals, VND.")
    units_sold: int = Field(description="Units in the paid orders.")


class ProductStatsOut(BaseModel):
    product_id: str
    name: str
    on_show: bool = Field(description="False when it was pinned, then taken off show.")
    times_pinned: int
    seconds_pinned: float
    viewers_while_pinned: int = Field(
        description="Distinct viewers watching at some moment while it was pinned."
    )
    buyers_while_pinned: int = Field(
        description="Distinct buyers of a paid order for it placed while it was pinned."
    )
    orders_while_pinned: int
    units_while_pinned: int
    orders: int = Field(description="Paid orders for it from this session, pinned or not.")
    units: int
    conversion: float = Field(
        description="Viewers while pinned who bought it while pinned, divided by "
        "viewers while pinned (0 to 1; 0 when nobody watched its pins)."
    )


class LiveStatsOut(BaseModel):
    live_session_id: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None = Field(
        description="Time live: to the end, or to measured_at while still live."
    )
    measured_at: datetime = Field(description="The server's clock when these were computed.")
    viewers: ViewerStatsOut
    chat_messages: int = Field(description="Messages sent, later deleted ones included.")
    chat_messages_deleted: int
    orders: OrderStatsOut
    products: list[ProductStatsOut]
    auctions: dict[str, int] = Field(
        description="auctions run, bids accepted, sold (winner's order placed), revenue "
        "at the winning prices (VND)."
    )
    vouchers: dict[str, int] = Field(
        description="drops, claims, used; sales_with_vouchers (orders not cancelled or "
        "expired) and discount_given (VND)."
    )
    giveaways: dict[str, int] = Field(
        description="giveaways run, entries, winners, prizes_claimed."
    )


# At one instant, what ends sorts before what starts: the order of this literal.
TimelineKind = Literal[
    "unpinned",
    "flash_ended",
    "auction_ended",
    "giveaway_drawn",
    "flash_started",
    "auction_started",
    "giveaway_started",
    "voucher_dropped",
    "pinned",
]


class TimelineEntryOut(BaseModel):
    """One change viewers saw, for replays, in time order: pins, flash sales, auctions,
    giveaways and voucher drops."""

    at: datetime
    kind: TimelineKind
    product_id: str | None = Field(None, description="None for a voucher drop.")
    flash_sale_id: str | None = None
    detail: dict[str, Any] | None = Field(
        None,
        description="An auction's, giveaway's or voucher drop's own fields (the auction's "
        "winner and amount once ended, the giveaway's seed once drawn, the voucher's terms).",
    )
