"""SQL for rubrics by ``name@version``. Repositories ``flush()`` and never commit: the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import utcnow
from judge.store.models import RubricRow
from judge.store.statements import dialect_insert
from rubrics.errors import RubricConflict
from rubrics.schema import Rubric


class RubricRepository:
    """Rubrics by ``name@version``; a registered version never changes content."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _hash_of(self, name: str, version: int) -> str | None:
        stmt = select(RubricRow.content_hash).where(RubricRow.name == name, RubricRow.version == version)
        return await self._session.scalar(stmt)

    async def add(self, rubric: Rubric) -> None:
        """Register a rubric; a no-op if the same content is there, :class:`RubricConflict` if other content is."""
        stored = await self._hash_of(rubric.name, rubric.version)
        if stored is None:
            stmt = dialect_insert(self._session, RubricRow).values(
                name=rubric.name,
                version=rubric.version,
                content_hash=rubric.content_hash,
                body=rubric.model_dump(mode="json"),
                created_at=utcnow(),
            )
            # A concurrent writer may win the race: then compare with what it stored.
            await self._session.execute(stmt.on_conflict_do_nothing())
            await self._session.flush()
            stored = await self._hash_of(rubric.name, rubric.version)
        if stored != rubric.content_hash:
            raise RubricConflict(
                f"rubric {rubric.ref} is already registered with other content; bump its version", field="rubric"
            )

    async def get(self, name: str, version: int | None = None) -> Rubric | None:
        """``name@version``, or the highest version of ``name`` when ``version`` is None."""
        stmt = select(RubricRow.body).where(RubricRow.name == name)
        if version is not None:
            stmt = stmt.where(RubricRow.version == version)
        stmt = stmt.order_by(RubricRow.version.desc())
        body = await self._session.scalar(stmt.limit(1))
        return Rubric.model_validate(body) if body is not None else None

    async def get_by_hash(self, content_hash: str) -> Rubric | None:
        body = await self._session.scalar(select(RubricRow.body).where(RubricRow.content_hash == content_hash))
        return Rubric.model_validate(body) if body is not None else None

    async def list_all(self) -> list[Rubric]:
        bodies = await self._session.scalars(select(RubricRow.body).order_by(RubricRow.name, RubricRow.version))
        return [Rubric.model_validate(body) for body in bodies]

    async def list_hashes(self) -> list[str]:
        """Content hashes of every stored rubric (cheap: no bodies), for replicas to catch up."""
        return list(await self._session.scalars(select(RubricRow.content_hash).order_by(RubricRow.id)))

    async def bodies_by_hash(self, hashes: Sequence[str]) -> list[dict[str, Any]]:
        stmt = select(RubricRow.body).where(RubricRow.content_hash.in_(hashes)).order_by(RubricRow.id)
        return list(await self._session.scalars(stmt))
