"""Bodies of the auctions API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from live.sessions.schemas import Id
from storage.web import Input
from storage.web.pagination import Page

MAX_PRICE = 10**12
MIN_DURATION_SECONDS = 10
MAX_DURATION_SECONDS = 3600
MAX_EXTEND_SECONDS = 300


class AuctionIn(Input):
    product_id: Id
    variant_id: Id | None = Field(
        default=None, description="Required when the product has several variants."
    )
    starting_price: int = Field(ge=0, le=MAX_PRICE, description="VND; the lowest first bid.")
    min_increment: int = Field(
        ge=1, le=MAX_PRICE, description="VND; each bid beats the last by it."
    )
    duration_seconds: int = Field(ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS)
    ending: Literal["anti_sniping", "sudden_death"] = Field(
        default="anti_sniping",
        description="anti_sniping: a bid in the last `extend_seconds` moves the end to "
        "`extend_seconds` after it; sudden_death: the end never moves.",
    )
    extend_seconds: int = Field(
        default=30, ge=1, le=MAX_EXTEND_SECONDS, description="The anti-sniping window."
    )
    reserve_price: int | None = Field(
        default=None, ge=0, le=MAX_PRICE, description="VND; below it nobody wins."
    )
    buy_now_price: int | None = Field(
        default=None, ge=1, le=MAX_PRICE, description="VND; a bid of it ends the auction."
    )


class BidIn(Input):
    amount: int = Field(ge=0, le=MAX_PRICE, description="VND; at least `minimum_bid`.")


class BidOut(BaseModel):
    auction_id: str
    amount: int
    bidder_name: str
    bid_count: int
    placed_at: datetime
    ends_at: datetime = Field(description="The auction's end after this bid.")
    extended: bool = Field(description="Whether this bid moved the end (anti-sniping).")
    bought: bool = Field(description="Whether it was at the buy-it-now price (it ended).")


class HistoryBid(BaseModel):
    amount: int
    bidder_id: str
    bidder_name: str
    placed_at: datetime


class AuctionOut(BaseModel):
    id: str
    live_session_id: str
    product_id: str
    variant_id: str | None
    starting_price: int
    min_increment: int
    reserve_price: int | None
    buy_now_price: int | None
    ending: Literal["anti_sniping", "sudden_death"]
    extend_seconds: int
    status: Literal["running", "ended", "cancelled"]
    current_price: int | None
    minimum_bid: int
    leader_id: str | None
    bid_count: int
    started_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    reserve_met: bool
    winner_id: str | None
    winner_name: str | None
    order_id: str | None = Field(description="The winner's order, once ended.")
    runner_up_order_id: str | None


class AuctionDetail(AuctionOut):
    bids: list[HistoryBid] = Field(description="Accepted bids, highest first.")


class RunnerUpOut(AuctionOut):
    runner_up_id: str
    runner_up_amount: int


class AuctionPage(Page[AuctionOut]):
    pass
