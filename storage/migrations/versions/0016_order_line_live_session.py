"""order line live session: each line keeps the live session it was bought in

An order's lines may come from several sessions of its shop (the order's own
`live_session_id` is then null), so a session's orders are found by their lines:
`GET /api/orders?live_session_id=...`. Lines written before this revision have none;
their orders still match by the order's own column.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("order_items", sa.Column("live_session_id", sa.String(length=36), nullable=True))
    op.create_index(
        op.f("ix_order_items_live_session_id"), "order_items", ["live_session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_order_items_live_session_id"), table_name="order_items")
    op.drop_column("order_items", "live_session_id")
