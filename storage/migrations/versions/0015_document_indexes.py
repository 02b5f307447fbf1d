"""document indexes: equality filters on a document's user and live session use an index

Expression indexes on (collection, the field's text), spelled as the document store's
queries spell them (the field name inline), so both SQLite and PostgreSQL use them for
the notification inbox (user_id) and a live session's chat history (live_session_id).
Building them takes the `documents` table's write lock for as long as it lasts.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FIELDS = ("user_id", "live_session_id")


def _field_text(field: str) -> sa.ColumnElement[str]:
    key = sa.bindparam(None, field, type_=sa.JSON.JSONIndexType(), literal_execute=True)
    return sa.column("body", sa.JSON())[key].as_string()


def upgrade() -> None:
    for field in FIELDS:
        op.create_index(
            f"ix_documents_{field}", "documents", [sa.column("collection"), _field_text(field)]
        )


def downgrade() -> None:
    for field in FIELDS:
        op.drop_index(f"ix_documents_{field}", table_name="documents")
