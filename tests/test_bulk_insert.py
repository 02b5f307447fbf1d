"""insert_new: the session's new rows in one round trip, identical to a normal flush."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from commerce.accounts.models import RefreshToken, Role, User
from storage.outbox import OutboxRow
from storage.sql import session_factory
from storage.sql.bulk import insert_new


def user(user_id: str) -> User:
    return User(
        id=user_id,
        email=f"{user_id}@example.com",
        password_hash="x",
        display_name="Ánh",
        role=Role.SELLER,
        created_at=datetime.now(UTC),
    )


async def test_parents_children_defaults_json_and_times_round_trip(sql_engine):
    sessions = session_factory(sql_engine)
    now = datetime.now(UTC).replace(microsecond=123456)
    async with sessions.begin() as session:
        # children added before their parent: insert_new must still order the tables
        session.add(
            RefreshToken(
                id="t1",
                user_id="u1",
                family_id="f",
                token_hash="h1",
                created_at=now,
                expires_at=now + timedelta(days=1),
            )
        )
        session.add(user("u1"))
        session.add(
            OutboxRow(
                id="e1",
                type="x.happened",
                occurred_at=now,
                data={"nested": {"list": [1, "dos", None]}, "vi": "Đà Nẵng"},
            )
        )
        await insert_new(session)
        assert not session.new
    async with sessions() as session:
        stored_user = await session.get(User, "u1")
        token = await session.get(RefreshToken, "t1")
        event = await session.get(OutboxRow, "e1")
    assert stored_user.is_active is True and stored_user.role == "seller"  # column default
    assert stored_user.display_name == "Ánh"
    assert token.expires_at == now + timedelta(days=1) and token.used_at is None
    assert event.data == {"nested": {"list": [1, "dos", None]}, "vi": "Đà Nẵng"}
    assert event.attempts == 0 and event.published_at is None and event.occurred_at == now


async def test_a_failing_row_inserts_nothing(sql_engine):
    sessions = session_factory(sql_engine)
    async with sessions.begin() as session:
        session.add(user("u1"))
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(user("u2"))
            session.add(user("u1"))  # duplicate primary key
            await insert_new(session)
    async with sessions() as session:
        assert (await session.scalars(select(User.id))).all() == ["u1"]
