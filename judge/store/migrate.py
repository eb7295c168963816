"""Apply the Alembic migrations programmatically (no alembic.ini): for ``rubric-judge migrate`` and tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

import migrations
from judge.store.database import create_engine, normalise_url


def script_location() -> Path:
    """Where the migration scripts are installed (the ``migrations`` package)."""
    # __path__, not __file__: also right for a namespace package (a stale editable install).
    return Path(next(iter(migrations.__path__))).resolve()


def make_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config; ``url`` None means ``judge.settings``' database URL."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # Passed as an attribute, not a main option: ConfigParser would choke on a '%' in a password.
    if url is not None:
        config.attributes["url"] = normalise_url(url).render_as_string(hide_password=False)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_sync(url: str | None = None, revision: str = "head") -> None:
    """Migrate ``url`` up to ``revision``; for synchronous callers with no running event loop."""
    command.upgrade(make_config(url), revision)


def downgrade_sync(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(make_config(url), revision)


def revision_sync(message: str, url: str | None = None, autogenerate: bool = True) -> None:
    """Write a new migration script; autogenerate diffs the models against the database at ``url``."""
    command.revision(make_config(url), message=message, autogenerate=autogenerate)


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate ``url`` up to ``revision`` from inside a running event loop."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(make_config(url, sync), revision))
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    """The newest revision the installed migration scripts know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(make_config()).get_current_head()
