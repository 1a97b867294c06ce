"""Schema migrations (alembic, configured here rather than by an ``alembic.ini``).

:func:`upgrade_to_head` runs on every :func:`storage.open_store`: a database made by an
older version of the workbench is brought up to date before anything reads it. The
upgrade holds SQLite's write lock, so two processes opening a new file at once do not
both try to create the tables.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revisions() -> list[str]:
    """Every revision this code has a migration for, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to ``revision`` inside one write transaction."""
    with engine.execution_options(sqlite_immediate=True).connect() as connection:
        with connection.begin():
            before = current_revision(connection)
            command.upgrade(alembic_config(connection), revision)
            after = current_revision(connection)
    if before != after:
        log.info("run store upgraded from %s to %s", before or "empty", after)


def upgrade_to_head(engine: Engine) -> None:
    with engine.connect() as connection:
        current = current_revision(connection)
    if current != head_revision():
        upgrade(engine, "head")
