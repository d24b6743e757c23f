"""Story keys indexed by the day their story was last seen, then key: the keys a poll writes
(a new story's, or an open story's moved to a new day) go near the end of the index, not to
random places all over it, and a look-up of the stories sharing an article's terms seeks each
day since its window opened. The index carries the story, so a look-up reads it alone.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_story_keys_seen_key", "story_keys", ["last_seen_at", "key", "story_id"])
    op.drop_index("ix_story_keys_key", table_name="story_keys")


def downgrade() -> None:
    op.create_index("ix_story_keys_key", "story_keys", ["key", "last_seen_at"])
    op.drop_index("ix_story_keys_seen_key", table_name="story_keys")
