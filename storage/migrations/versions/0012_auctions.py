"""live auctions and their accepted bids

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auctions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("live_session_id", sa.String(36), nullable=False),
        sa.Column("shop_id", sa.String(36), nullable=False),
        sa.Column("product_id", sa.String(36), nullable=False),
        sa.Column("variant_id", sa.String(36), nullable=True),
        sa.Column("starting_price", sa.BigInteger(), nullable=False),
        sa.Column("min_increment", sa.BigInteger(), nullable=False),
        sa.Column("reserve_price", sa.BigInteger(), nullable=True),
        sa.Column("buy_now_price", sa.BigInteger(), nullable=True),
        sa.Column("ending", sa.String(16), nullable=False),
        sa.Column("extend_seconds", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("current_price", sa.BigInteger(), nullable=True),
        sa.Column("leader_id", sa.String(36), nullable=True),
        sa.Column("bid_count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("order_id", sa.String(36), nullable=True),
        sa.Column("runner_up_order_id", sa.String(36), nullable=True),
        sa.Column("created_by", sa.String(36), nullable=False),
        sa.CheckConstraint("starting_price >= 0 AND min_increment > 0", name="ck_auctions_prices"),
        sa.ForeignKeyConstraint(
            ["live_session_id"],
            ["live_sessions.id"],
            name="fk_auctions_live_session_id_live_sessions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name="fk_auctions_product_id_products"
        ),
    )
    op.create_index("ix_auctions_live_session_id", "auctions", ["live_session_id"])
    op.create_index("ix_auctions_status_ends_at", "auctions", ["status", "ends_at"])
    op.create_table(
        "auction_bids",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("auction_id", sa.String(36), nullable=False),
        sa.Column("bidder_id", sa.String(36), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["auction_id"],
            ["auctions.id"],
            name="fk_auction_bids_auction_id_auctions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("auction_id", "sequence", name="uq_auction_bids_auction_id_sequence"),
        sa.UniqueConstraint("auction_id", "amount", name="uq_auction_bids_auction_id_amount"),
    )


def downgrade() -> None:
    op.drop_table("auction_bids")
    op.drop_table("auctions")
