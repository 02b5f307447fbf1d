"""Bodies of the giveaways API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from storage.web import Input
from storage.web.pagination import Page

Id = Annotated[str, Field(min_length=1, max_length=64)]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40)]
MIN_DURATION_SECONDS = 1
MAX_DURATION_SECONDS = 3600
MAX_WINNERS = 100


class GiveawayIn(Input):
    product_id: Id = Field(description="The prize: a product of the session's shop.")
    variant_id: Id | None = Field(
        default=None, description="Required when the product has several variants."
    )
    winners: int = Field(default=1, ge=1, le=MAX_WINNERS, description="How many win one unit.")
    entry_mode: Literal["button", "keyword", "followers"] = Field(
        description="`button`: anyone signed in presses enter; `keyword`: a chat message "
        "containing the keyword (any case) enters its sender; `followers`: the button, "
        "for followers of the shop only."
    )
    keyword: Keyword | None = Field(default=None, description="Required for `keyword` only.")
    duration_seconds: int = Field(
        ge=MIN_DURATION_SECONDS, le=MAX_DURATION_SECONDS, description="Entries close after this."
    )


class ClaimPrizeIn(Input):
    address_id: Id = Field(description="One of your saved addresses (`/api/me/addresses`).")


class GiveawayOut(BaseModel):
    id: str
    live_session_id: str
    shop_id: str
    product_id: str
    variant_id: str
    winners_count: int
    entry_mode: Literal["button", "keyword", "followers"]
    keyword: str | None
    status: Literal["open", "drawn", "cancelled"]
    seed_commitment: str = Field(description="SHA-256 (hex) of the seed's 32 bytes.")
    seed: str | None = Field(description="The seed (hex), revealed with the winners.")
    algorithm: str = Field(description="How the winners follow from the seed (docs/giveaways.md).")
    starts_at: datetime
    closes_at: datetime
    drawn_at: datetime | None
    server_time: datetime = Field(description="The server's clock, for countdowns.")
    entries_count: int


class EntryOut(BaseModel):
    user_id: str
    display_name: str


class WinnerOut(BaseModel):
    user_id: str
    display_name: str
    rank: int = Field(description="1 for the smallest ticket.")
    order_id: str | None = Field(description="The prize's zero-price order.")
    prize: Literal["unclaimed", "claimed", "unavailable"]


class GiveawayRecordOut(GiveawayOut):
    """The public record: enough to recompute the draw (docs/giveaways.md)."""

    entries: list[EntryOut]
    winners: list[WinnerOut]


class GiveawayPage(Page[GiveawayOut]):
    pass


class EnteredOut(BaseModel):
    giveaway_id: str
    already_entered: bool = Field(description="True when this user had entered before.")
