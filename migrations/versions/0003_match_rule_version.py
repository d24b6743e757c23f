"""The version of the rule that made each match: a hash of its query and of the queries it
refers to, so a match can be traced to the rule as it was written then.

A plain ALTER TABLE ADD COLUMN, which SQLite does in place: no table is rebuilt.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("matches", sa.Column("rule_version", sa.String(length=16)))


def downgrade() -> None:
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("rule_version")
