"""The bands' day-and-band index carries the article too: a look-up of the articles sharing
a poll's bands is answered from the index alone, without a visit to the table for each row it
finds, and lets the database start from the poll's own bands.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_article_bands_day_band_article", "article_bands", ["day", "band", "article_id"]
    )
    op.drop_index("ix_article_bands_day_band", table_name="article_bands")


def downgrade() -> None:
    op.create_index("ix_article_bands_day_band", "article_bands", ["day", "band"])
    op.drop_index("ix_article_bands_day_band_article", table_name="article_bands")
