"""MinHash signatures from rensa, and bands as integers: each stored article's signature and
bands are worked out again from its text (the old ones are not comparable with the new), a
thousand articles at a time, oldest first. Going back, the signatures are cleared and the
bands dropped: the articles stored until then are compared by URL and title only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from monitor.stories import band_keys, text_signature
from monitor.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHUNK = 1000
_TOLD_EVERY = 50 * _CHUNK  # a log line every so many articles: a large log takes minutes
_LOG = logging.getLogger("monitor.store")
_ARTICLES = sa.table(
    "articles",
    sa.column("id", _ID),
    sa.column("title", sa.Text),
    sa.column("summary", sa.Text),
    sa.column("text", sa.Text),
    sa.column("published_at", UTCDateTime),
    sa.column("fetched_at", UTCDateTime),
    sa.column("minhash", sa.LargeBinary),
)
_BANDS = sa.table(
    "article_bands",
    sa.column("article_id", _ID),
    sa.column("band", sa.BigInteger),
    sa.column("day", sa.Integer),
)


def upgrade() -> None:
    _new_table("article_bands", sa.BigInteger())
    conn = op.get_bind()
    last = done = 0
    while True:
        rows = conn.execute(
            sa.select(
                _ARTICLES.c.id,
                _ARTICLES.c.title,
                _ARTICLES.c.summary,
                _ARTICLES.c.text,
                _ARTICLES.c.published_at,
                _ARTICLES.c.fetched_at,
            )
            .where(_ARTICLES.c.id > last)
            .order_by(_ARTICLES.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        signatures = [(r, text_signature(r.title, r.text, r.summary)) for r in rows]
        conn.execute(
            sa.update(_ARTICLES)
            .where(_ARTICLES.c.id == sa.bindparam("article"))
            .values(minhash=sa.bindparam("signature")),
            [dict(article=r.id, signature=s) for r, s in signatures],
        )
        bands = [
            dict(article_id=r.id, band=band, day=_day(r.published_at or r.fetched_at))
            for r, s in signatures
            if s is not None
            for band in band_keys(s)
        ]
        if bands:
            conn.execute(sa.insert(_BANDS), bands)
        done += len(rows)
        if done % _TOLD_EVERY == 0:
            _LOG.info(
                "migration 0010: signatures worked out again for %d stored articles so far", done
            )
    _LOG.info("migration 0010: signatures worked out again for %d stored articles", done)


def downgrade() -> None:
    _new_table("article_bands", sa.String(length=20))
    op.execute(sa.update(_ARTICLES).values(minhash=None))


def _new_table(name: str, band: sa.types.TypeEngine[object]) -> None:
    """The bands table again, empty, with ``band`` of the given type."""
    op.drop_index("ix_article_bands_day_band_article", table_name=name)
    op.drop_table(name)
    op.create_table(
        name,
        sa.Column(
            "article_id",
            _ID,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("band", band, primary_key=True),
        sa.Column("day", sa.Integer(), nullable=False),
    )
    op.create_index("ix_article_bands_day_band_article", name, ["day", "band", "article_id"])


def _day(when: datetime) -> int:
    """The UTC date of a stored time, as the store writes it with the bands."""
    return when.astimezone(UTC).date().toordinal()
