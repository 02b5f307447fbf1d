"""revocations: tokens, refresh families and users whose access ends before expiry;
the account audit trail; triggers that revoke a user disabled or deleted in SQL

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

POSTGRES_NOW = "extract(epoch from clock_timestamp())"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
REVOKE_USER = "INSERT INTO revocations (kind, subject, revoked_at) VALUES ('user', OLD.id, {now})"
DISABLED = "OLD.is_active AND NOT NEW.is_active"


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=False),
    )
    op.create_index("ix_revocations_revoked_at", "revocations", ["revoked_at"])
    op.create_table(
        "account_audit",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("actor_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_account_audit_user_id", "account_audit", ["user_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION revoke_user_tokens() RETURNS trigger AS $$ BEGIN "
            f"{REVOKE_USER.format(now=POSTGRES_NOW)}; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER users_disabled AFTER UPDATE OF is_active ON users FOR EACH ROW "
            f"WHEN ({DISABLED}) EXECUTE FUNCTION revoke_user_tokens()"
        )
        op.execute(
            "CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW "
            "EXECUTE FUNCTION revoke_user_tokens()"
        )
    else:
        revoke = REVOKE_USER.format(now=SQLITE_NOW)
        op.execute(
            f"CREATE TRIGGER users_disabled AFTER UPDATE OF is_active ON users "
            f"WHEN {DISABLED} BEGIN {revoke}; END"
        )
        op.execute(f"CREATE TRIGGER users_deleted AFTER DELETE ON users BEGIN {revoke}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for trigger in ("users_disabled", "users_deleted"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (" ON users" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS revoke_user_tokens()")
    op.drop_table("account_audit")
    op.drop_table("revocations")
