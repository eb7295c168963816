"""SQL for the reward-model registry. Repositories ``flush()`` and never commit: the caller owns the transaction."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from judge.db.base import utcnow
from judge.store.models import RewardModelRow
from judge.store.statements import dialect_insert
from rubrics.errors import RubricJudgeError


class RewardModelConflict(RubricJudgeError):
    """A reward model ``name@version`` that is already registered."""

    status_code = 409


class RewardModelNotFound(RubricJudgeError):
    status_code = 404


class RewardModelRecord(BaseModel):
    """A registered reward model."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    name: str
    version: int
    path: str
    base_model: str
    rubric_hash: str
    axis_keys: list[str]
    config: dict[str, Any]
    metrics: dict[str, Any]
    active: bool
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class RewardModelRepository:
    """The reward-model registry: versions per name, at most one active version per name."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def register(
        self,
        name: str,
        *,
        path: str,
        base_model: str,
        rubric_hash: str,
        axis_keys: Sequence[str],
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        version: int | None = None,
        active: bool = False,
    ) -> RewardModelRecord:
        """Register a model; ``version`` defaults to the next free one. ``active`` deactivates the others."""
        if version is None:
            highest = await self._session.scalar(
                select(func.max(RewardModelRow.version)).where(RewardModelRow.name == name)
            )
            version = (highest or 0) + 1
        if active:
            await self._deactivate_all(name)
        stmt = (
            dialect_insert(self._session, RewardModelRow)
            .values(
                name=name,
                version=version,
                path=path,
                base_model=base_model,
                rubric_hash=rubric_hash,
                axis_keys=list(axis_keys),
                config=config or {},
                metrics=metrics or {},
                active=active,
                created_at=utcnow(),
            )
            # DO NOTHING + RETURNING tells a taken name@version apart without aborting the caller's transaction.
            .on_conflict_do_nothing()
            .returning(RewardModelRow.id)
        )
        new_id = (await self._session.execute(stmt)).scalar_one_or_none()
        if new_id is None:
            raise RewardModelConflict(f"reward model {name}@{version} is already registered", field="version")
        await self._session.flush()
        return await self._require(name, version)

    async def get(self, name: str, version: int | None = None) -> RewardModelRecord | None:
        """``name@version``, or the highest version of ``name`` when ``version`` is None."""
        stmt = select(RewardModelRow).where(RewardModelRow.name == name)
        if version is not None:
            stmt = stmt.where(RewardModelRow.version == version)
        row = await self._session.scalar(stmt.order_by(RewardModelRow.version.desc()).limit(1))
        return RewardModelRecord.model_validate(row) if row is not None else None

    async def get_active(self, name: str) -> RewardModelRecord | None:
        stmt = select(RewardModelRow).where(RewardModelRow.name == name, RewardModelRow.active == true())
        row = await self._session.scalar(stmt.limit(1))
        return RewardModelRecord.model_validate(row) if row is not None else None

    async def list(self, name: str | None = None) -> builtins.list[RewardModelRecord]:
        stmt = select(RewardModelRow).order_by(RewardModelRow.name, RewardModelRow.version)
        if name is not None:
            stmt = stmt.where(RewardModelRow.name == name)
        return [RewardModelRecord.model_validate(row) for row in await self._session.scalars(stmt)]

    async def set_active(self, name: str, version: int, active: bool = True) -> RewardModelRecord:
        """Activate ``name@version`` (deactivating its other versions), or deactivate it."""
        await self._require(name, version)
        if active:
            await self._deactivate_all(name)
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.version == version)
            .values(active=active)
            .execution_options(synchronize_session=False)
        )
        await self._session.flush()
        return await self._require(name, version)

    async def update_metrics(self, name: str, version: int, metrics: dict[str, Any]) -> RewardModelRecord:
        """Merge evaluation metrics into a registered model's metrics."""
        record = await self._require(name, version)
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.id == record.id)
            .values(metrics={**record.metrics, **metrics})
            .execution_options(synchronize_session=False)
        )
        await self._session.flush()
        return await self._require(name, version)

    async def _deactivate_all(self, name: str) -> None:
        await self._session.execute(
            update(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.active == true())
            .values(active=False)
            .execution_options(synchronize_session=False)
        )

    async def _require(self, name: str, version: int) -> RewardModelRecord:
        # populate_existing: the UPDATEs above bypass the identity map, so reload the row from the database.
        stmt = (
            select(RewardModelRow)
            .where(RewardModelRow.name == name, RewardModelRow.version == version)
            .execution_options(populate_existing=True)
        )
        row = await self._session.scalar(stmt)
        if row is None:
            raise RewardModelNotFound(f"no reward model {name}@{version}", field="reward_model")
        return RewardModelRecord.model_validate(row)
