"""Stories: articles of one event grouped, duplicates recorded. New tables (stories, their
indexed keys, the MinHash bands of articles) and added columns on articles: nothing existing
is rebuilt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COLUMNS = ("story_id", "duplicate_of", "outlet", "url_key", "title_key", "minhash")


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("article_count", sa.Integer(), nullable=False),
        sa.Column("outlets", sa.JSON(), nullable=False),
        sa.Column("actors", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
    )
    op.create_index("ix_stories_last_seen_at", "stories", ["last_seen_at"])
    op.create_table(
        "story_keys",
        sa.Column(
            "story_id",
            _ID,
            sa.ForeignKey("stories.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_story_keys_key", "story_keys", ["key", "last_seen_at"])
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
    op.create_index("ix_article_bands_article_id", "article_bands", ["article_id"])
    op.create_index("ix_article_bands_band_at", "article_bands", ["band", "at"])
    op.add_column("articles", sa.Column("story_id", _ID))
    op.add_column("articles", sa.Column("duplicate_of", _ID))
    op.add_column("articles", sa.Column("outlet", sa.String(length=200)))
    op.add_column("articles", sa.Column("url_key", sa.String(length=600)))
    op.add_column("articles", sa.Column("title_key", sa.String(length=600)))
    op.add_column("articles", sa.Column("minhash", sa.LargeBinary()))
    for name in ("story_id", "url_key", "title_key"):
        op.create_index(f"ix_articles_{name}", "articles", [name])


def downgrade() -> None:
    for name in ("story_id", "url_key", "title_key"):
        op.drop_index(f"ix_articles_{name}", table_name="articles")
    with op.batch_alter_table("articles") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
    op.drop_index("ix_article_bands_band_at", table_name="article_bands")
    op.drop_index("ix_article_bands_article_id", table_name="article_bands")
    op.drop_table("article_bands")
    op.drop_index("ix_story_keys_key", table_name="story_keys")
    op.drop_table("story_keys")
    op.drop_index("ix_stories_last_seen_at", table_name="stories")
    op.drop_table("stories")
