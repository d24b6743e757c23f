"""Delivery claims (a lease and its token), set-aside deliveries, and indexes over pending
deliveries only.

Plain ALTER TABLE ADD COLUMN and CREATE/DROP INDEX, which SQLite does in place: no table is
rebuilt, so no foreign key can cascade.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("deliveries")}
    if "lease_until" not in columns:  # databases made during development may have it already
        op.add_column("deliveries", sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.add_column("deliveries", sa.Column("lease_token", sa.String(length=36)))
    op.add_column(
        "deliveries",
        sa.Column("set_aside", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.drop_index("ix_deliveries_status", table_name="deliveries")
    op.create_index(
        "ix_deliveries_pending_order",
        "deliveries",
        ["alert_id", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.create_index(
        "ix_deliveries_pending_channel",
        "deliveries",
        ["channel", "next_attempt_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_channel", table_name="deliveries")
    op.drop_index("ix_deliveries_pending_order", table_name="deliveries")
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("set_aside")
        batch.drop_column("lease_token")
        batch.drop_column("lease_until")
