"""vouchers: shop vouchers, buyers' claims of them, and the voucher on an order

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vouchers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("shop_id", sa.String(36), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("min_order", sa.BigInteger(), nullable=False),
        sa.Column("max_discount", sa.BigInteger(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("per_buyer_limit", sa.Integer(), nullable=False),
        sa.Column("live_session_id", sa.String(36), nullable=True),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dropped_in", sa.String(36), nullable=True),
        sa.Column("claims_close_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_vouchers_shop_id_shops"),
        sa.CheckConstraint(
            "claimed >= 0 AND claimed <= total", name="ck_vouchers_claimed_within_total"
        ),
        sa.CheckConstraint("used >= 0 AND used <= claimed", name="ck_vouchers_used_within_claimed"),
    )
    op.create_index("ix_vouchers_shop_id", "vouchers", ["shop_id"])
    op.create_index("ix_vouchers_dropped_in", "vouchers", ["dropped_in"])
    op.create_table(
        "voucher_claims",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("voucher_id", sa.String(36), nullable=False),
        sa.Column("buyer_id", sa.String(36), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(36), nullable=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name="fk_voucher_claims_voucher_id_vouchers"
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name="fk_voucher_claims_buyer_id_users"
        ),
    )
    op.create_index("ix_voucher_claims_order_id", "voucher_claims", ["order_id"])
    op.create_index("ix_voucher_claims_voucher_buyer", "voucher_claims", ["voucher_id", "buyer_id"])
    op.create_index("ix_voucher_claims_buyer", "voucher_claims", ["buyer_id", "claimed_at"])
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("voucher_claim_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("voucher_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("voucher_code", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("voucher_code")
        batch_op.drop_column("voucher_id")
        batch_op.drop_column("voucher_claim_id")
    op.drop_table("voucher_claims")
    op.drop_table("vouchers")
