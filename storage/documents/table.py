"""The SQL home of documents: one JSON column per record, keyed by collection and id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Index, String, bindparam
from sqlalchemy.orm import Mapped, mapped_column

from storage.documents.rules import INDEXED_FIELDS
from storage.sql import Base, UtcDateTime


class DocumentRow(Base):
    __tablename__ = "documents"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_documents_collection_created", "collection", "created_at"),)


def field_element(field: str) -> ColumnElement[Any]:
    """A top-level JSON element, its name written into the SQL rather than bound: an
    expression index serves only queries that spell the same constant."""
    key = bindparam(None, field, type_=JSON.JSONIndexType(), literal_execute=True)
    return DocumentRow.body[key]


def field_text(field: str) -> ColumnElement[str]:
    return field_element(field).as_string()


def index_name(field: str) -> str:
    return f"ix_documents_{field}"


FIELD_INDEXES = tuple(
    Index(index_name(field), DocumentRow.collection, field_text(field)) for field in INDEXED_FIELDS
)
