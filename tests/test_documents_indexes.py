"""The inbox and chat history queries use the documents table's expression indexes, on
SQLite and PostgreSQL: each statement the store sends is explained by the database
itself, with enough documents of other users and sessions that a scan would lose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.documents import SqlDocuments
from storage.documents.rules import MAX_LIMIT
from storage.sql import session_factory

USERS = 1000
SESSIONS = 50
PER_OWNER = 10  # 20,000 documents in all
HISTORY = 50
QUERIES = ("SELECT", "UPDATE", "DELETE")


@contextlib.contextmanager
def sent(engine: AsyncEngine) -> Iterator[list[tuple[str, object]]]:
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *args) -> None:
        if statement.startswith(QUERIES):  # not BEGIN and the like
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def plan(engine: AsyncEngine, statement: str, parameters: object) -> str:
    explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    async with engine.connect() as conn:
        rows = (await conn.exec_driver_sql(f"{explain} {statement}", parameters)).all()
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


async def filled(engine: AsyncEngine) -> SqlDocuments:
    store = SqlDocuments(session_factory(engine))
    notifications = [
        {"user_id": f"user-{n % USERS}", "read_at": None, "created_at": f"2026-12-04T{n}"}
        for n in range(USERS * PER_OWNER)
    ]
    messages = [
        {"live_session_id": f"live-{n % SESSIONS}", "deleted": False, "created_at": f"{n:08}"}
        for n in range(USERS * PER_OWNER)
    ]
    for start in range(0, len(notifications), MAX_LIMIT):
        await store.insert_many("notifications", notifications[start : start + MAX_LIMIT])
        await store.insert_many("chat", messages[start : start + MAX_LIMIT])
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))  # statistics for the expression indexes
    return store


async def test_inbox_and_chat_history_use_their_indexes(sql_engine):
    store = await filled(sql_engine)
    inbox = {"user_id": "user-7", "hidden": None}
    with sent(sql_engine) as statements:
        page = await store.find("notifications", inbox, sort="id", descending=True, limit=100)
        unread = await store.count("notifications", {**inbox, "read_at": None})
        marked = await store.update_many(
            "notifications", {**inbox, "read_at": None}, {"read_at": "2026-12-04"}
        )
    assert len(page) == unread == marked == PER_OWNER
    assert len(statements) == 3
    for statement, parameters in statements:
        assert "ix_documents_user_id" in await plan(sql_engine, statement, parameters)

    with sent(sql_engine) as statements:
        history = await store.find(
            "chat",
            {"live_session_id": "live-3", "deleted": False},
            sort="created_at",
            descending=True,
            limit=HISTORY,
        )
    assert len(history) == HISTORY
    [(statement, parameters)] = statements
    assert "ix_documents_live_session_id" in await plan(sql_engine, statement, parameters)


async def test_retention_batches_walk_the_insertion_time_index(sql_engine):
    store = await filled(sql_engine)
    with sent(sql_engine) as statements:
        deleted = await store.delete_many(
            "notifications", stored_before=datetime.now(UTC) - timedelta(days=90)
        )
    assert deleted == 0
    [(statement, parameters)] = statements
    assert "ix_documents_collection_created" in await plan(sql_engine, statement, parameters)
