"""events by name and time: "who did X in the last N days" as an index range (segments)

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-25 22:54:06.238077
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY, so ingest keeps writing while a large timeline is indexed; it cannot
        # run inside a transaction.
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_events_event_timestamp",
                "events",
                ["event", "timestamp"],
                unique=False,
                postgresql_concurrently=True,
            )
        return
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_event_timestamp", ["event", "timestamp"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_event_timestamp")
