"""Request and response bodies of the shops API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from storage.web import Input
from storage.web.pagination import Page

ShopName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]  # an opaque row id


class ShopIn(Input):
    name: ShopName
    description: Annotated[str, Field(max_length=2000)] = ""


class ModeratorIn(Input):
    user_id: Id = Field(description="An existing account with the moderator role.")


class ShopOut(BaseModel):
    id: str
    owner_id: str
    name: str
    slug: str = Field(description="Unique, derived from the name when the shop was created.")
    description: str
    status: str = Field(description="pending (awaiting an admin), active or suspended.")
    created_at: datetime
    approved_at: datetime | None
    follower_count: int = Field(0, description="Buyers following the shop.")


class ShopPage(Page[ShopOut]):
    pass
