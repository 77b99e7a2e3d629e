"""Schema migrations (Alembic, shipped inside the package so an installed OmniCX can migrate)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from omnicx.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "heads") -> None:
    """Bring the database to ``revision`` (creating the SQLite file if needed).

    ``heads``: each capability's migrations may branch from a common ancestor; all are applied."""
    command.upgrade(alembic_config(settings), revision)


def revision(
    settings: Settings, message: str, *, rev_id: str | None = None, head: str = "head"
) -> None:
    """Autogenerate a migration from the models (developers only); the database must be at
    ``head``, the revision the new one follows."""
    command.revision(
        alembic_config(settings),
        message=message,
        autogenerate=True,
        rev_id=rev_id,
        head=head,
        splice=head != "head",  # a branch of its own, beside the other capabilities' heads
    )
