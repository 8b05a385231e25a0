"""Apply the Alembic migrations in `migrations/` without an alembic.ini."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from geo_service.settings import PROJECT_ROOT


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at this project's migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database down to `revision` (`base` removes every table)."""
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def script_directory() -> ScriptDirectory:
    """This project's migration scripts."""
    return ScriptDirectory.from_config(alembic_config("postgresql://unused"))


def head() -> str | None:
    """The newest revision this version of jxplan knows."""
    return script_directory().get_current_head()


def is_known(revision: str) -> bool:
    """Whether `revision` is exactly the id of one of this project's migrations."""
    return any(script.revision == revision for script in script_directory().walk_revisions())


def head_revisions() -> frozenset[str]:
    """The newest revision(s) of `migrations/`: what a database must be at for this code."""
    return frozenset(script_directory().get_heads())
