"""notifications: buyers following shops, and each user's notification channels per kind

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shop_follows",
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "shop_id",
            sa.String(36),
            sa.ForeignKey("shops.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_shop_follows_shop_id", "shop_follows", ["shop_id"])
    op.create_table(
        "notification_preferences",
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("in_app", sa.Boolean, nullable=False),
        sa.Column("email", sa.Boolean, nullable=False),
        sa.Column("push", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_preferences")
    op.drop_index("ix_shop_follows_shop_id", table_name="shop_follows")
    op.drop_table("shop_follows")
