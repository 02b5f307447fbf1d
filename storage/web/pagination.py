"""Keyset (cursor) pagination over a time-ordered id column, shared by every list endpoint.

Ids are UUIDv7, so ordering by id descending lists the newest rows first, and
`WHERE id < last_id` continues exactly where the previous page ended: unlike
OFFSET, rows inserted meanwhile never shift the pages or repeat a row. The cursor
is the last id in base64url, opaque to clients so the scheme can change.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str:
    """The id inside a cursor; ValueError for anything this API did not hand out."""
    try:
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if str(uuid.UUID(last_id)) != last_id:
            raise ValueError
    except ValueError:
        raise ValueError("not a cursor returned by this API") from None
    return last_id


CURSOR_PATTERN = r"^[A-Za-z0-9_-]{48}$"  # a UUID's 36 characters in unpadded base64url

Cursor = Annotated[
    str,
    Field(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page, as it was given: 48 characters "
        "of base64url. Anything this API did not hand out is refused with 422.",
    ),
    AfterValidator(decode_cursor),
]


class PageQuery(BaseModel):
    """Query parameters of a list endpoint. Query strings arrive as text, so this model
    is lax about types (`limit=20` becomes an int) but still forbids unknown names."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100, description="Items per page.")
    cursor: Cursor | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


async def keyset_page(
    session: AsyncSession, query: Select[Any], key: InstrumentedAttribute[str], page: PageQuery
) -> tuple[list[Any], str | None]:
    """One page of `query`'s rows, newest `key` first, and the cursor of the next page."""
    if page.cursor is not None:
        query = query.where(key < page.cursor)
    rows = list((await session.scalars(query.order_by(key.desc()).limit(page.limit + 1))).all())
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, encode_cursor(getattr(rows[-1], key.key))
