"""live allocations: units each order took from a session's showcase and flash sales

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_allocations",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("product_id", sa.String(length=36), nullable=False),
        sa.Column("live_session_id", sa.String(length=36), nullable=False),
        sa.Column("buyer_id", sa.String(length=36), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("flash_sale_id", sa.String(length=36), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_live_allocations_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["flash_sale_id"],
            ["flash_sales.id"],
            name=op.f("fk_live_allocations_flash_sale_id_flash_sales"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name=op.f("fk_live_allocations_live_session_id_live_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_live_allocations_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_live_allocations_product_id_products")
        ),
        sa.PrimaryKeyConstraint("order_id", "product_id", name=op.f("pk_live_allocations")),
    )
    with op.batch_alter_table("live_allocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_live_allocations_live_session_id"), ["live_session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("live_allocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_allocations_live_session_id"))
    op.drop_table("live_allocations")
