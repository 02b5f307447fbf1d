"""Document store port: schemaless records (chat, notifications, analytics).

Embedded and default: `SqlDocuments` (a JSON column in the relational database).
Real: `MongoDocuments` (PyMongo's async client). Filters are equality on
top-level fields; sorting is by one top-level field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Document = dict[str, Any]


class DocumentStore(Protocol):
    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        """Store a document and return its id (`doc["id"]` if given, else a new one)."""
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
    ) -> list[Document]: ...

    async def update(self, collection: str, doc_id: str, changes: Mapping[str, Any]) -> bool:
        """Set top-level fields; True when the document existed."""
        ...

    async def delete(self, collection: str, doc_id: str) -> bool: ...

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
