"""Document store: schemaless records in SQL (default) or MongoDB (when a URL is set)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.documents.mongo import MongoDocuments
from storage.documents.port import Document, DocumentStore, DuplicateDocument
from storage.documents.sql import SqlDocuments

__all__ = [
    "Document",
    "DocumentStore",
    "DuplicateDocument",
    "MongoDocuments",
    "SqlDocuments",
    "make_documents",
]


def make_documents(
    mongo_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    database: str = "streamcart",
) -> DocumentStore:
    """MongoDB when `mongo_url` is set, else the relational database already in use."""
    if mongo_url:
        return MongoDocuments(mongo_url, database)
    return SqlDocuments(session_factory)
