"""Polite polling: a source's run of 304 answers (to check that its validators tell the
truth), when it was disabled after failing too often, how long its feed asks to wait (ttl,
sy:updatePeriod, kept across 304 answers), and whether a poll found every item new (items may
have scrolled off between polls).

Plain ALTER TABLE ADD COLUMN, which SQLite does in place: no table is rebuilt.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sources",
        sa.Column("not_modified_streak", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("sources", sa.Column("disabled_at", sa.DateTime(timezone=True)))
    op.add_column("sources", sa.Column("feed_wait", sa.Integer()))
    op.add_column(
        "fetches",
        sa.Column("overflow", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("fetches") as batch:
        batch.drop_column("overflow")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("feed_wait")
        batch.drop_column("disabled_at")
        batch.drop_column("not_modified_streak")
