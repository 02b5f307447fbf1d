"""Each user's channels per kind: a row only for kinds the user changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from commerce.notifications.kinds import KINDS, Choice, default_choice
from commerce.notifications.models import NotificationPreference

CHANNELS = tuple(f.name for f in fields(Choice))


class Preferences:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def of(self, user_id: str) -> dict[str, Choice]:
        """Every kind, with the user's choice or the default."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(NotificationPreference).where(NotificationPreference.user_id == user_id)
                )
            ).all()
        chosen = {row.kind: Choice(row.in_app, row.email, row.push) for row in rows}
        return {kind: chosen.get(kind, default_choice(kind)) for kind in KINDS}

    async def change(self, user_id: str, choices: Mapping[str, Choice]) -> dict[str, Choice]:
        """Set the given kinds; kinds not named keep what they had. One upsert, so two
        first changes at once do not collide on the primary key."""
        rows = [
            {"user_id": user_id, "kind": kind, **asdict(choice)} for kind, choice in choices.items()
        ]
        if rows:
            async with self._sessions.begin() as session:
                dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
                insert = dialect.insert(NotificationPreference)
                await session.execute(
                    insert.on_conflict_do_update(
                        index_elements=["user_id", "kind"],
                        set_={name: insert.excluded[name] for name in CHANNELS},
                    ),
                    rows,
                )
        return await self.of(user_id)
