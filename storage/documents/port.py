"""Document store port: schemaless records (chat history, chat bans, blocked words,
notifications).

Embedded and default: `SqlDocuments` (a JSON column in the relational database).
Real: `MongoDocuments` (PyMongo's async client). Both follow one contract
(`storage.documents.rules`, `tests/contract/test_documents.py`):

- A document is a JSON object; its id is the string field "id". Other values
  must be JSON too: datetimes are rejected with `TypeError` (store ISO 8601 UTC
  strings), because the adapters could not give them back alike.
- Filters are equality on top-level fields with str, int, bool or None values.
  Matching is type-strict (1 matches neither "1" nor true, nor an array holding
  1); None matches null and a missing field.
- `find` sorts by one top-level field (nulls and missing first when ascending)
  or, without `sort`, by insertion time; ties go to the id, in the same
  direction. Fields mixing value types sort in a backend-defined order.
- `limit` is at least 1 and capped at `rules.MAX_LIMIT`.
- Equality filters on `rules.INDEXED_FIELDS` (a document's user, its live session)
  use an index in every collection; other filters read the whole collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from storage.documents.rules import MAX_LIMIT

Document = dict[str, Any]


class DuplicateDocument(Exception):
    """A document with this id already exists in the collection."""

    def __init__(self, collection: str, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} already exists in {collection!r}")
        self.collection = collection
        self.doc_id = doc_id


class DocumentStore(Protocol):
    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        """Store a document and return its id (`doc["id"]` if given, else a new one)."""
        ...

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store many documents in one round trip (fan-out); a document whose id is
        already in the collection is skipped, not an error. Returns the ids stored."""
        ...

    async def get(self, collection: str, doc_id: str) -> Document | None: ...

    async def find(
        self,
        collection: str,
        where: Mapping[str, Any] | None = None,
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int = 100,
        after_id: str | None = None,
    ) -> list[Document]:
        """`after_id` (with `sort="id"` only) keeps the ids past it in the sort order: a
        keyset cursor, so a page deep in a collection costs what the first one does."""
        ...

    async def update(self, collection: str, doc_id: str, changes: Mapping[str, Any]) -> bool:
        """Set top-level fields; True when the document existed."""
        ...

    async def update_many(
        self, collection: str, where: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> int:
        """Set top-level fields on every document matching `where`, in one statement;
        returns how many matched."""
        ...

    async def delete(self, collection: str, doc_id: str) -> bool: ...

    async def delete_many(
        self,
        collection: str,
        where: Mapping[str, Any] | None = None,
        *,
        stored_before: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> int:
        """Delete at most `limit` documents matching `where` and inserted before
        `stored_before`, oldest first (a bounded batch, through the insertion-time
        index); returns how many went."""
        ...

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int: ...

    async def prepare(self, collection: str) -> None:
        """Build the collection's indexes now (at start-up) rather than on first use."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
