"""Auctions and bids as events, the REST API and the hub show them."""

from __future__ import annotations

from typing import Any

from live.auctions.bidding import Bid
from live.auctions.models import Auction, AuctionStatus


def minimum_bid(auction: Auction) -> int:
    if auction.current_price is None:
        return auction.starting_price
    return auction.current_price + auction.min_increment


def reserve_met(auction: Auction) -> bool:
    return auction.current_price is not None and (
        auction.reserve_price is None or auction.current_price >= auction.reserve_price
    )


def auction_data(auction: Auction, winner_name: str | None = None) -> dict[str, Any]:
    """Terms and state; once ended, the winner (the leader, when the reserve is met)."""
    won = auction.status == AuctionStatus.ENDED and reserve_met(auction)
    return {
        "id": auction.id,
        "live_session_id": auction.live_session_id,
        "product_id": auction.product_id,
        "variant_id": auction.variant_id,
        "starting_price": auction.starting_price,
        "min_increment": auction.min_increment,
        "reserve_price": auction.reserve_price,
        "buy_now_price": auction.buy_now_price,
        "ending": auction.ending,
        "extend_seconds": auction.extend_seconds,
        "status": auction.status,
        "current_price": auction.current_price,
        "minimum_bid": minimum_bid(auction),
        "leader_id": auction.leader_id,
        "bid_count": auction.bid_count,
        "started_at": auction.started_at.isoformat(),
        "ends_at": auction.ends_at.isoformat(),
        "ended_at": auction.ended_at.isoformat() if auction.ended_at else None,
        "reserve_met": reserve_met(auction),
        "winner_id": auction.leader_id if won else None,
        "winner_name": winner_name if won else None,
        "order_id": auction.order_id,
        "runner_up_order_id": auction.runner_up_order_id,
    }


def bid_event(bid: Bid, live_session_id: str) -> dict[str, Any]:
    """`auction:bid`: what every viewer needs to redraw the auction."""
    return {
        "auction_id": bid.auction_id,
        "live_session_id": live_session_id,
        "amount": bid.amount,
        "bidder_name": bid.bidder_name,
        "bid_count": bid.bid_count,
        "placed_at": bid.placed_at.isoformat(),
        "ends_at": bid.ends_at.isoformat(),
        "extended": bid.extended,
    }


def for_viewers(data: dict[str, Any]) -> dict[str, Any]:
    """`auction:started` / `auction:ended` for the whole room: without the orders, which
    concern the winner and the seller alone (they see them in their orders)."""
    return {k: v for k, v in data.items() if k not in ("order_id", "runner_up_order_id")}
