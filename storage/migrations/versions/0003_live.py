"""live sessions, products on show, flash sales

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("shop_id", sa.String(length=36), nullable=False),
        sa.Column("host_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stream_key_hash", sa.String(length=64), nullable=False),
        sa.Column("pinned_product_id", sa.String(length=36), nullable=True),
        sa.Column("slow_mode_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["users.id"], name=op.f("fk_live_sessions_host_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_live_sessions_shop_id_shops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_sessions")),
        sa.UniqueConstraint("stream_key_hash", name=op.f("uq_live_sessions_stream_key_hash")),
    )
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_sessions_shop_id"), ["shop_id"], unique=False)
        batch_op.create_index("ix_live_sessions_status", ["status", "scheduled_at"], unique=False)

    op.create_table(
        "live_products",
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("live_price", sa.BigInteger(), nullable=True),
        sa.Column("live_stock", sa.Integer(), nullable=True),
        sa.Column("live_sold", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "live_price IS NULL OR live_price >= 0", name=op.f("ck_live_products_price")
        ),
        sa.CheckConstraint(
            "live_stock IS NULL OR live_sold <= live_stock",
            name=op.f("ck_live_products_allocation"),
        ),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_products_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_live_products_product_id_products")
        ),
        sa.PrimaryKeyConstraint("live_session_id", "product_id", name=op.f("pk_live_products")),
    )
    op.create_table(
        "flash_sales",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("variant_id", sa.String(length=36), nullable=True),
        sa.Column("flash_price", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("per_buyer_limit", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("announced", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("per_buyer_limit >= 1", name=op.f("ck_flash_sales_limit_positive")),
        sa.CheckConstraint(
            "sold >= 0 AND sold <= quantity", name=op.f("ck_flash_sales_sold_within_quantity")
        ),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_flash_sales_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_flash_sales_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_flash_sales_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flash_sales")),
    )
    with op.batch_alter_table("flash_sales", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flash_sales_live_session_id"), ["live_session_id"], unique=False
        )

    op.create_table(
        "flash_claims",
        sa.Column("flash_sale_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_flash_claims_buyer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["flash_sale_id"],
            ["flash_sales.id"],
            name=op.f("fk_flash_claims_flash_sale_id_flash_sales"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flash_sale_id", "buyer_id", name=op.f("pk_flash_claims")),
    )


def downgrade() -> None:
    op.drop_table("flash_claims")
    with op.batch_alter_table("flash_sales", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flash_sales_live_session_id"))

    op.drop_table("flash_sales")
    op.drop_table("live_products")
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_live_sessions_status")
        batch_op.drop_index(batch_op.f("ix_live_sessions_shop_id"))

    op.drop_table("live_sessions")
