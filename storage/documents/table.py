"""The SQL home of documents: one JSON column per record, keyed by collection and id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.sql import Base, UtcDateTime


class DocumentRow(Base):
    __tablename__ = "documents"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_documents_collection_created", "collection", "created_at"),)
