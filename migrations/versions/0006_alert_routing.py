"""Alert routing: silences; what became of each match (its outcome and the alert it joined);
alerts that belong to a story, as a first alert or an update, kept and marked when silenced;
deliveries sent at once, held for quiet hours or gathered into a digest, with a note saying
why they wait.

New tables and added columns: nothing existing is rebuilt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String(length=200)),
        sa.Column("topic", sa.String(length=200)),
        sa.Column("source", sa.String(length=200)),
        sa.Column("rule", sa.String(length=200)),
    )
    op.create_index("ix_silences_expires_at", "silences", ["expires_at"])
    op.add_column("matches", sa.Column("alert_id", sa.Integer()))
    op.add_column("matches", sa.Column("outcome", sa.String(length=20)))
    op.add_column("alerts", sa.Column("story_id", sa.Integer()))
    op.add_column(
        "alerts", sa.Column("kind", sa.String(length=10), nullable=False, server_default="new")
    )
    op.add_column("alerts", sa.Column("follows", sa.Integer()))
    op.add_column("alerts", sa.Column("silence_id", sa.Integer()))
    op.add_column("alerts", sa.Column("send_at", sa.DateTime(timezone=True)))
    op.create_index("ix_alerts_rule_story", "alerts", ["rule", "story_id"])
    op.add_column(
        "deliveries",
        sa.Column("mode", sa.String(length=10), nullable=False, server_default="now"),
    )
    op.add_column("deliveries", sa.Column("note", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("note")
        batch.drop_column("mode")
    op.drop_index("ix_alerts_rule_story", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("send_at")
        batch.drop_column("silence_id")
        batch.drop_column("follows")
        batch.drop_column("kind")
        batch.drop_column("story_id")
    with op.batch_alter_table("matches") as batch:
        batch.drop_column("outcome")
        batch.drop_column("alert_id")
    op.drop_index("ix_silences_expires_at", table_name="silences")
    op.drop_table("silences")
