"""analytics

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-25 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import omnicx.db

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "analytics_runs",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("started_at", omnicx.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", omnicx.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_runs")),
    )
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_analytics_runs_started_at"), ["started_at"])

    op.create_table(
        "computed_traits",
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("traits", JSON, nullable=False),
        sa.Column("updated_at", omnicx.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_computed_traits")),
    )

    op.create_table(
        "survey_responses",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_key", sa.String(length=220), nullable=False),
        sa.Column("profile_id", sa.String(length=32), nullable=False),
        sa.Column("survey", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("journey_id", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("store_id", sa.String(length=100), nullable=True),
        sa.Column("answered_at", omnicx.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("event_key", name=op.f("uq_survey_responses_event_key")),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_responses_profile_id"), ["profile_id"])
        batch_op.create_index(
            "ix_survey_responses_survey_answered", ["survey", "answered_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("survey_responses")
    op.drop_table("computed_traits")
    op.drop_table("analytics_runs")
