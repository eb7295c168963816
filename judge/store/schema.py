"""Is the database's schema the one this code needs? (``/readyz``, ``serve`` and every CLI command ask.)

A database that was never migrated, or that is behind the installed migration scripts, is named as such with
the fix (``rubric-judge migrate``) instead of surfacing later as "no such table" on a first request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncEngine

from rubrics.errors import RubricJudgeError


class SchemaNotReady(RubricJudgeError):
    """The database answers but its schema is missing or older than this code."""

    status_code = 503


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str | None
    # Revisions the installed scripts know; a current revision outside it is newer than this code.
    known: frozenset[str]

    @property
    def ready(self) -> bool:
        return self.current == self.head or (self.current is not None and self.current not in self.known)

    @property
    def problem(self) -> str | None:
        """What is wrong, in one line that says what to do; None when ready."""
        if self.ready:
            return None
        if self.current is None:
            return "the database has no schema (never migrated): run `rubric-judge migrate`"
        return (
            f"the database schema is at revision {self.current}, this version needs {self.head}: "
            "run `rubric-judge migrate`"
        )


@lru_cache(maxsize=1)
def _scripts() -> tuple[str | None, frozenset[str]]:
    from alembic.script import ScriptDirectory

    from judge.store.migrate import make_config

    scripts = ScriptDirectory.from_config(make_config())
    return scripts.get_current_head(), frozenset(rev.revision for rev in scripts.walk_revisions())


async def schema_state(engine: AsyncEngine, timeout_s: float = 5.0) -> SchemaState:
    """The database's revision against the scripts' head; raises what connecting raises (unreachable, timeout)."""
    from alembic.runtime.migration import MigrationContext

    head, known = _scripts()
    async with asyncio.timeout(timeout_s), engine.connect() as connection:
        current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    return SchemaState(current, head, known)


async def require_schema(engine: AsyncEngine) -> None:
    """Raise :class:`SchemaNotReady` when the database answers with a missing or older schema.

    An unreachable database is left to the callers' own outage handling (it may come back).
    """
    try:
        state = await schema_state(engine)
    except (OSError, TimeoutError):
        return
    except Exception as exc:
        # Driver errors for a refused or dropped connection wrap OSError; anything else is worth showing.
        if isinstance(exc.__cause__, OSError) or "connect" in type(exc).__name__.lower():
            return
        raise
    if state.problem is not None:
        raise SchemaNotReady(state.problem, field="database_url")
