"""The migrations build exactly the schema the models describe, on PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from judge.db.base import Base
from judge.settings import get_settings
from judge.store import migrate
from judge.store import models as _models  # noqa: F401  (puts every table on Base.metadata)
from judge.store.database import create_engine


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True, "target_metadata": Base.metadata}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_naming_convention_names_constraints(pg_engine: AsyncEngine) -> None:
    def names(connection: Connection) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            "uq": {uq["name"] or "" for uq in inspector.get_unique_constraints("rubrics")},
            "fk": {fk["name"] or "" for fk in inspector.get_foreign_keys("verdicts")},
            "ix": {ix["name"] or "" for ix in inspector.get_indexes("verdicts")},
        }

    async with pg_engine.connect() as conn:
        found = await conn.run_sync(names)
    assert found["uq"] == {"uq_rubrics_name_version", "uq_rubrics_content_hash"}
    assert found["fk"] == {"fk_verdicts_sample_hash_samples"}
    assert found["ix"] == {
        "ix_verdicts_cache_key_complete",
        "ix_verdicts_rubric_sample_judge",
        "ix_verdicts_failed_created_at",
    }


async def test_upgrade_downgrade_upgrade_on_a_new_sqlite_file(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/nested/dir/rj.db"
    assert await migrate.current_revision(url) is None
    await migrate.upgrade(url)
    assert migrate.head_revision() is not None
    assert await migrate.current_revision(url) == migrate.head_revision()
    await migrate.upgrade(url)  # idempotent

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


def test_sync_api_migrates_and_reverts(tmp_path: Any) -> None:
    # The synchronous entry point the CLI uses (no event loop running in this test).
    url = f"sqlite:///{tmp_path}/sync.db"
    migrate.upgrade_sync(url)
    migrate.downgrade_sync(url)
    migrate.upgrade_sync(url)
    assert (tmp_path / "sync.db").exists()


def test_without_a_url_the_settings_decide(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RJ_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/from-settings.db")
    get_settings.cache_clear()
    try:
        migrate.upgrade_sync()
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "from-settings.db").exists()


def test_migration_scripts_ship_with_the_package() -> None:
    location = migrate.script_location()
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://u@h/db"])
def test_url_given_to_alembic_pins_the_async_driver(url: str) -> None:
    config = migrate.make_config(url)
    assert "+aiosqlite" in config.attributes["url"] or "+asyncpg" in config.attributes["url"]
