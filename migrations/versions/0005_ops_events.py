"""Operational events: a source disabled or silent, a channel down; when each opened and
cleared, and when each was announced through the ops channel. And when each delivery first
failed, to tell how long a channel has been down.

A new table and an added column: nothing existing is rebuilt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("announced_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_announced_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_ops_events_subject", "ops_events", ["kind", "subject", "resolved_at"])
    op.add_column("deliveries", sa.Column("failing_since", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("failing_since")
    op.drop_index("ix_ops_events_subject", table_name="ops_events")
    op.drop_table("ops_events")
