"""cart line unique: one cart line per unit also outside live sessions; one allocation
row per (order, product, session); Sepay ids of any size

- cart_items: the unique constraint on (user_id, variant_id, live_session_id) let
  lines with no session (NULL, distinct in a unique constraint) pile up. It becomes a
  unique index on (user_id, variant_id, COALESCE(live_session_id, '')), after merging
  the duplicate lines already there (quantities summed, capped at 999, the latest
  price kept).
- live_allocations: the key (order_id, product_id) refused an order buying one
  product from two sessions; the session joins the key.
- sepay_transactions.sepay_id: a bigint refused ids from 2^63; it is stored in decimal.

A downgrade fails while rows need the new shape (an order's allocations from two
sessions of one product, a Sepay id past 2^63 - 1).

Revision ID: 0007
Revises: 0006
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MAX_QUANTITY = 999
LINE = ["user_id", "variant_id", sa.text("coalesce(live_session_id, '')")]


def upgrade() -> None:
    _merge_duplicate_lines()
    with op.batch_alter_table("cart_items", schema=None) as batch_op:
        batch_op.drop_constraint("one_line_per_unit", type_="unique")
    op.create_index("one_line_per_unit", "cart_items", LINE, unique=True)
    _allocation_key(["order_id", "product_id", "live_session_id"])
    with op.batch_alter_table("sepay_transactions", schema=None) as batch_op:
        batch_op.alter_column(
            "sepay_id",
            existing_type=sa.BigInteger(),
            type_=sa.String(length=64),
            existing_nullable=False,
            postgresql_using="sepay_id::varchar(64)",
        )


def downgrade() -> None:
    with op.batch_alter_table("sepay_transactions", schema=None) as batch_op:
        batch_op.alter_column(
            "sepay_id",
            existing_type=sa.String(length=64),
            type_=sa.BigInteger(),
            existing_nullable=False,
            postgresql_using="sepay_id::bigint",
        )
    _allocation_key(["order_id", "product_id"])
    op.drop_index("one_line_per_unit", table_name="cart_items")
    with op.batch_alter_table("cart_items", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "one_line_per_unit", ["user_id", "variant_id", "live_session_id"]
        )


def _merge_duplicate_lines() -> None:
    """Fold every group of lines for one unit into its first line."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, user_id, variant_id, coalesce(live_session_id, '') AS unit_session,"
            " quantity, price_when_added FROM cart_items AS c WHERE EXISTS (SELECT 1"
            " FROM cart_items AS d WHERE d.user_id = c.user_id AND d.variant_id ="
            " c.variant_id AND coalesce(d.live_session_id, '') ="
            " coalesce(c.live_session_id, '') AND d.id <> c.id) ORDER BY added_at, id"
        )
    ).all()
    groups = defaultdict(list)
    for row in rows:
        groups[row.user_id, row.variant_id, row.unit_session].append(row)
    for first, *others in groups.values():
        bind.execute(
            sa.text(
                "UPDATE cart_items SET quantity = :quantity, price_when_added = :price"
                " WHERE id = :id"
            ),
            {
                "id": first.id,
                "quantity": min(MAX_QUANTITY, sum(row.quantity for row in (first, *others))),
                "price": others[-1].price_when_added,
            },
        )
        bind.execute(
            sa.text("DELETE FROM cart_items WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": [row.id for row in others]},
        )


def _allocation_key(columns: list[str]) -> None:
    with op.batch_alter_table("live_allocations", schema=None) as batch_op:
        batch_op.drop_constraint("pk_live_allocations", type_="primary")
        batch_op.create_primary_key("pk_live_allocations", columns)
