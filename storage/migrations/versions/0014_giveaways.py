"""giveaways: prizes drawn with a commit-reveal seed, their entries and winners

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "giveaways",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("shop_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("variant_id", sa.String(length=36), nullable=False),
        sa.Column("winners_count", sa.Integer(), nullable=False),
        sa.Column("entry_mode", sa.String(length=12), nullable=False),
        sa.Column("keyword", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("seed_commitment", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.CheckConstraint("winners_count >= 1", name=op.f("ck_giveaways_winners_positive")),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_giveaways_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_giveaways_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_giveaways_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_giveaways")),
    )
    with op.batch_alter_table("giveaways", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_giveaways_live_session_id"), ["live_session_id"], unique=False
        )
        batch_op.create_index("ix_giveaways_due", ["status", "closes_at"], unique=False)
    op.create_table(
        "giveaway_entries",
        sa.Column("giveaway_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["giveaway_id"],
            ["giveaways.id"],
            name=op.f("fk_giveaway_entries_giveaway_id_giveaways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_giveaway_entries_user_id_users")
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "user_id", name=op.f("pk_giveaway_entries")),
    )
    op.create_table(
        "giveaway_winners",
        sa.Column("giveaway_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=36), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["giveaway_id"],
            ["giveaways.id"],
            name=op.f("fk_giveaway_winners_giveaway_id_giveaways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_giveaway_winners_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_giveaway_winners_user_id_users")
        ),
        sa.PrimaryKeyConstraint("giveaway_id", "user_id", name=op.f("pk_giveaway_winners")),
    )


def downgrade() -> None:
    op.drop_table("giveaway_winners")
    op.drop_table("giveaway_entries")
    with op.batch_alter_table("giveaways", schema=None) as batch_op:
        batch_op.drop_index("ix_giveaways_due")
        batch_op.drop_index(batch_op.f("ix_giveaways_live_session_id"))
    op.drop_table("giveaways")
