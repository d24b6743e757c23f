"""Articles carry the UTC day they came out, and their titles are indexed by day, then title:
a poll's titles go near the end of the index, not to random places all over it (which made
every poll write a page of the index for nearly each article), and a look-up for the same
title reads the days of its window. Each stored article gets its day from its time.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("articles", sa.Column("day", sa.Integer(), nullable=True))
    op.execute(f"UPDATE articles SET day = {_day_of('COALESCE(published_at, fetched_at)')}")
    op.create_index("ix_articles_day_title_key", "articles", ["day", "title_key"])
    op.drop_index("ix_articles_title_key", table_name="articles")


def downgrade() -> None:
    op.create_index("ix_articles_title_key", "articles", ["title_key"])
    op.drop_index("ix_articles_day_title_key", table_name="articles")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("day")


def _day_of(at: str) -> str:
    """SQL for the UTC date of ``at`` as Python's ``date.toordinal()`` counts it."""
    if op.get_bind().dialect.name == "postgresql":
        return f"(({at}) AT TIME ZONE 'UTC')::date - DATE '0001-01-01' + 1"
    return f"CAST(julianday(date({at})) - 1721424.5 AS INTEGER)"  # times are stored in UTC
