"""live analytics: viewer visits and the pin timeline

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_visits",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("viewer_key", sa.String(length=64), nullable=False),
        sa.Column("signed_in", sa.Boolean(), nullable=False),
        sa.Column("socket_id", sa.String(length=64), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_visits_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_visits")),
    )
    with op.batch_alter_table("live_visits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_live_visits_session_socket", ["live_session_id", "socket_id"], unique=False
        )

    op.create_table(
        "live_pins",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unpinned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_pins_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_live_pins_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_pins")),
    )
    with op.batch_alter_table("live_pins", schema=None) as batch_op:
        batch_op.create_index(
            "ix_live_pins_session_pinned", ["live_session_id", "pinned_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("live_pins", schema=None) as batch_op:
        batch_op.drop_index("ix_live_pins_session_pinned")

    op.drop_table("live_pins")
    with op.batch_alter_table("live_visits", schema=None) as batch_op:
        batch_op.drop_index("ix_live_visits_session_socket")

    op.drop_table("live_visits")
