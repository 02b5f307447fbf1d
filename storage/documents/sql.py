"""Documents as rows of the `documents` table: the embedded default, no extra server.

Filters and sorting run in SQL on JSON elements. SQLite (json1) and PostgreSQL
(`json`) name JSON types differently, so each dialect contributes only a "kind"
expression normalised to one vocabulary (string, number, true, false, null,
array, object) and a binary collation; everything else is shared. The kind is what
keeps matching type-strict, as MongoDB is: a bare `->>` or `json_extract` would
let 1 match "1" or true.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Numeric,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import UnaryExpression

from storage.documents.port import Document, DuplicateDocument
from storage.documents.rules import (
    MAX_LIMIT,
    Scalar,
    check_after_id,
    check_collection,
    check_sort,
    check_where,
    clamp_limit,
    prepare_bulk_changes,
    prepare_changes,
    prepare_insert,
)
from storage.documents.table import DocumentRow, field_element, field_text

_body = DocumentRow.body


def _sqlite_kind(field: str) -> ColumnElement[str]:
    """json_type already says 'true' / 'false'; only rename text and the two number kinds."""
    raw = func.json_type(_body, f'$."{field}"')
    return case({"text": "string", "integer": "number", "real": "number"}, value=raw, else_=raw)


def _postgres_kind(field: str) -> ColumnElement[str]:
    """json_typeof says 'boolean'; its `->>` text, 'true' or 'false', is the kind we want."""
    raw = func.json_typeof(field_element(field))
    return case({"boolean": field_text(field)}, value=raw, else_=raw)


def _sqlite_merge(fields: dict[str, Any]) -> ColumnElement[Any]:
    """json_set, not json_patch: a merge patch would delete a field set to null."""
    pairs = [(f'$."{name}"', func.json(json.dumps(value))) for name, value in fields.items()]
    return func.json_set(_body, *(part for pair in pairs for part in pair), type_=JSON)


def _postgres_merge(fields: dict[str, Any]) -> ColumnElement[Any]:
    patch = cast(literal(json.dumps(fields)), postgresql.JSONB)
    return cast(cast(_body, postgresql.JSONB).op("||")(patch), JSON)


@dataclass(frozen=True)
class _JsonDialect:
    kind: Callable[[str], ColumnElement[str]]
    collation: str | None  # byte order, as MongoDB compares strings
    merge: Callable[[dict[str, Any]], ColumnElement[Any]]  # the body with fields set


_DIALECTS = {
    "sqlite": _JsonDialect(_sqlite_kind, None, _sqlite_merge),  # BINARY: SQLite's default
    "postgresql": _JsonDialect(_postgres_kind, "C", _postgres_merge),
}


# INSERT ... ON CONFLICT DO NOTHING, which both dialects spell alike.
_UPSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class SqlDocuments:
    """`DocumentStore` on the relational database; the engine belongs to the caller."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        check_collection(collection)
        doc_id, fields = prepare_insert(doc)
        row = DocumentRow(
            collection=collection, id=doc_id, body=fields, created_at=datetime.now(UTC)
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:  # the primary key is the table's only constraint
            raise DuplicateDocument(collection, doc_id) from exc
        return doc_id

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        check_collection(collection)
        now = datetime.now(UTC)
        rows = [
            {"collection": collection, "id": doc_id, "body": fields, "created_at": now}
            for doc_id, fields in map(prepare_insert, docs)
        ]
        if not rows:
            return []
        async with self._sessions.begin() as session:
            dialect = session.bind.dialect.name
            query = _UPSERT[dialect](DocumentRow).on_conflict_do_nothing()
            stored = await session.scalars(query.returning(DocumentRow.id), rows)
            return list(stored.all())

    async def get(self, collection: str, doc_id: str) -> Document | None:
        check_collection(collection)
        async with self._sessions() as session:
            row = await session.get(DocumentRow, (collection, doc_id))
        return None if row is None else _document(row)

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
        check_collection(collection)
        where, sort, limit = check_where(where), check_sort(sort), clamp_limit(limit)
        after_id = check_after_id(sort, after_id)
        async with self._sessions() as session:
            dialect = _dialect(session)
            conditions = _conditions(dialect, collection, where)
            if after_id is not None:
                conditions.append(_past(dialect, after_id, descending))
            query = (
                select(DocumentRow)
                .where(*conditions)
                .order_by(*_order(dialect, sort, descending))
                .limit(limit)
            )
            rows = (await session.scalars(query)).all()
        return [_document(row) for row in rows]

    async def update(self, collection: str, doc_id: str, changes: Mapping[str, Any]) -> bool:
        check_collection(collection)
        fields = prepare_changes(doc_id, changes)
        async with self._sessions.begin() as session:
            # FOR UPDATE: concurrent merges into one document must not lose fields.
            row = await session.scalar(
                select(DocumentRow).where(*_key(collection, doc_id)).with_for_update()
            )
            if row is None:
                return False
            if fields:
                row.body = {**row.body, **fields}
        return True

    async def update_many(
        self, collection: str, where: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> int:
        check_collection(collection)
        where, fields = check_where(where), prepare_bulk_changes(changes)
        if not fields:
            return await self.count(collection, where)
        async with self._sessions.begin() as session:
            dialect = _dialect(session)
            query = (
                update(DocumentRow)
                .where(*_conditions(dialect, collection, where))
                .values(body=dialect.merge(fields))
                .execution_options(synchronize_session=False)
            )
            result = await session.execute(query)
        return result.rowcount

    async def delete(self, collection: str, doc_id: str) -> bool:
        check_collection(collection)
        async with self._sessions.begin() as session:
            result = await session.execute(delete(DocumentRow).where(*_key(collection, doc_id)))
        return result.rowcount > 0

    async def delete_many(
        self,
        collection: str,
        where: Mapping[str, Any] | None = None,
        *,
        stored_before: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> int:
        check_collection(collection)
        where, limit = check_where(where), clamp_limit(limit)
        async with self._sessions.begin() as session:
            conditions = _conditions(_dialect(session), collection, where)
            if stored_before is not None:
                conditions.append(DocumentRow.created_at < stored_before)
            oldest = (
                select(DocumentRow.id)
                .where(*conditions)
                .order_by(DocumentRow.created_at)
                .limit(limit)
            )
            query = delete(DocumentRow).where(
                DocumentRow.collection == collection, DocumentRow.id.in_(oldest.scalar_subquery())
            )
            result = await session.execute(query.execution_options(synchronize_session=False))
        return result.rowcount

    async def count(self, collection: str, where: Mapping[str, Any] | None = None) -> int:
        check_collection(collection)
        where = check_where(where)
        async with self._sessions() as session:
            conditions = _conditions(_dialect(session), collection, where)
            query = select(func.count()).select_from(DocumentRow).where(*conditions)
            return (await session.scalar(query)) or 0

    async def prepare(self, collection: str) -> None:
        """Nothing to build: migrations made the indexes, for every collection at once."""
        check_collection(collection)

    async def ping(self) -> None:
        """Reach the database and the `documents` table (a missing migration fails here)."""
        async with self._sessions() as session:
            await session.execute(select(DocumentRow.id).limit(1))

    async def close(self) -> None:
        """Nothing to release: the engine is shared with the rest of the process."""


def _document(row: DocumentRow) -> Document:
    return {"id": row.id, **row.body}


def _dialect(session: AsyncSession) -> _JsonDialect:
    name = session.bind.dialect.name
    try:
        return _DIALECTS[name]
    except KeyError:
        raise NotImplementedError(f"documents are not supported on {name}") from None


def _key(collection: str, doc_id: str) -> tuple[ColumnElement[bool], ...]:
    return DocumentRow.collection == collection, DocumentRow.id == doc_id


def _conditions(
    dialect: _JsonDialect, collection: str, where: dict[str, Scalar]
) -> list[ColumnElement[bool]]:
    conditions = [DocumentRow.collection == collection]
    for field, value in where.items():
        if field == "id":
            conditions.append(DocumentRow.id == value)
        else:
            conditions.append(_equals(dialect.kind(field), field_text(field), value))
    return conditions


def _equals(
    kind: ColumnElement[str], text: ColumnElement[str], value: Scalar
) -> ColumnElement[bool]:
    if value is None:
        return text.is_(None)  # JSON null and a missing field alike
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    if isinstance(value, int):
        # CASE, not AND: PostgreSQL may evaluate the cast before the kind test.
        return _number(kind, text) == literal(value, BigInteger())
    return (kind == "string") & (text == value)


def _number(kind: ColumnElement[str], text: ColumnElement[str]) -> ColumnElement[Any]:
    return case((kind == "number", text.cast(Numeric())), else_=None)


def _binary(dialect: _JsonDialect, column: ColumnElement[str]) -> ColumnElement[str]:
    """Strings compared by code point, as MongoDB and the sort order do."""
    return column.collate(dialect.collation) if dialect.collation else column


def _past(dialect: _JsonDialect, after_id: str, descending: bool) -> ColumnElement[bool]:
    key = _binary(dialect, DocumentRow.id)
    return key < after_id if descending else key > after_id


def _order(dialect: _JsonDialect, sort: str | None, descending: bool) -> list[UnaryExpression]:
    def direction(column: ColumnElement[Any]) -> UnaryExpression:
        return column.desc().nulls_last() if descending else column.asc().nulls_first()

    tie = direction(_binary(dialect, DocumentRow.id))
    if sort is None:
        return [direction(DocumentRow.created_at), tie]
    if sort == "id":
        return [tie]
    text = field_text(sort)
    # Numbers by value, everything else by its text; missing and null come first.
    return [direction(_number(dialect.kind(sort), text)), direction(_binary(dialect, text)), tie]
