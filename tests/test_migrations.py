"""Migrations build exactly the schema the models declare, on every SQL backend."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from live.schema import metadata
from storage.sql.migrate import current_revision, head_revision, upgrade


async def test_migrations_match_models(sql_engine):
    async with sql_engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), metadata()
            )
        )
    assert diff == []


async def test_upgrade_is_idempotent_and_reaches_head(sql_engine):
    await upgrade(sql_engine)
    assert await current_revision(sql_engine) == head_revision()
