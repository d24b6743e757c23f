"""MinHash bands indexed by day, then band: a poll's bands go near the end of the index, not
to random places all over it (which made every write cost more as the log grew), and a
look-up reads the days of its window (the articles it finds are held to the window by their
own time, so a band keeps its day, not its time). The table is keyed by (article, band) for
the same reason. Its rows are copied into the new shape, each with the UTC day of its time;
going back, each gets its article's time again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEPT = "article_bands_kept"  # the rows, while the table is made anew


def upgrade() -> None:
    _set_aside(("ix_article_bands_band_at", "ix_article_bands_article_id"))
    op.create_table(
        "article_bands",
        sa.Column(
            "article_id",
            _ID,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("band", sa.String(length=20), primary_key=True),
        sa.Column("day", sa.Integer(), nullable=False),
    )
    op.execute(
        f"INSERT INTO article_bands (article_id, band, day)"
        f" SELECT article_id, band, {_day_of_at()} FROM {_KEPT}"
    )
    op.drop_table(_KEPT)
    op.create_index("ix_article_bands_day_band", "article_bands", ["day", "band"])


def downgrade() -> None:
    _set_aside(("ix_article_bands_day_band",))
    op.create_table(
        "article_bands",
        sa.Column("band", sa.String(length=20), primary_key=True),
        sa.Column(
            "article_id",
            _ID,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(  # the time an article came out, as the store wrote it with its bands
        f"INSERT INTO article_bands (band, article_id, at)"
        f" SELECT k.band, k.article_id, COALESCE(a.published_at, a.fetched_at)"
        f" FROM {_KEPT} k JOIN articles a ON a.id = k.article_id"
    )
    op.drop_table(_KEPT)
    op.create_index("ix_article_bands_article_id", "article_bands", ["article_id"])
    op.create_index("ix_article_bands_band_at", "article_bands", ["band", "at"])


def _set_aside(indexes: tuple[str, ...]) -> None:
    """Copy the rows to a plain table (no constraints whose names the new table needs) and
    drop the old one."""
    op.execute(f"CREATE TABLE {_KEPT} AS SELECT * FROM article_bands")
    for name in indexes:
        op.drop_index(name, table_name="article_bands")
    op.drop_table("article_bands")


def _day_of_at() -> str:
    """SQL for the UTC date of ``at`` as Python's ``date.toordinal()`` counts it."""
    if op.get_bind().dialect.name == "postgresql":
        return "((at AT TIME ZONE 'UTC')::date - DATE '0001-01-01' + 1)"
    return "CAST(julianday(date(at)) - 1721424.5 AS INTEGER)"  # times are stored in UTC
