"""Bodies of the live-sessions API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from storage.web import Input
from storage.web.pagination import Page, PageQuery

Id = Annotated[str, Field(min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ProductOnShowIn(Input):
    product_id: Id
    live_price: Annotated[int, Field(ge=0, le=10**12)] | None = Field(
        default=None, description="Price during the stream; null = regular price."
    )
    live_stock: Annotated[int, Field(ge=0, le=10**7)] | None = Field(
        default=None, description="Units set aside for the stream; null = no cap."
    )


class LiveSessionIn(Input):
    shop_id: Id
    title: Title
    description: Annotated[str, Field(max_length=5000)] = ""
    scheduled_at: AwareDatetime
    products: Annotated[list[ProductOnShowIn], Field(max_length=200)] = Field(default_factory=list)


class ProductsIn(Input):
    products: Annotated[list[ProductOnShowIn], Field(min_length=1, max_length=200)]


class LiveSessionQuery(PageQuery):
    status: Literal["scheduled", "live", "ended"] | None = None
    shop_id: Id | None = None


class ShowcaseItemOut(BaseModel):
    """A product on show, priced for the stream, with what can still be bought."""

    product_id: str
    name: str
    image: str | None
    price: int
    live_price: int | None
    available: int
    position: int


class LiveSessionOut(BaseModel):
    id: str
    shop_id: str
    host_id: str
    title: str
    description: str
    status: str
    scheduled_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    pinned_product_id: str | None
    products: list[ShowcaseItemOut] | None = None


class StreamOut(BaseModel):
    server_url: str = Field(description="OBS 'Server' (RTMP).")
    whip_url: str = Field(
        description="OBS 'Server' for its WHIP output (Bearer Token: the stream key), or a "
        "browser's WHIP endpoint."
    )
    stream_key: str = Field(description="OBS 'Stream key'. Shown only now; rotate to replace.")


class CreatedLiveSessionOut(LiveSessionOut):
    stream: StreamOut


class LiveSessionPage(Page[LiveSessionOut]):
    pass
