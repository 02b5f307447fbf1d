"""Alembic environment: runs on the connection handed in by `storage.sql.migrate`."""

from alembic import context

from storage.sql.engine import UtcDateTime

config = context.config
connection = config.attributes["connection"]


def render_item(kind, obj, autogen_context):
    """Write our column types as plain SQLAlchemy ones, so migrations import nothing of ours."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
