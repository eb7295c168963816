"""GET /v1/verdicts/{id}: a stored verdict."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.errors import VerdictNotFound
from judge.integrity.facts import level_distributions
from judge.store.verdicts_repository import VerdictRepository
from rubrics.aggregation import aggregate

router = APIRouter(tags=["verdicts"])


@router.get("/verdicts/{verdict_id}", responses=ERROR_RESPONSES)
async def get_verdict(verdict_id: str, runtime: RuntimeDep, session: SessionDep) -> FastJSONResponse:
    verdict = await VerdictRepository(session).get(verdict_id)
    if verdict is None:
        raise VerdictNotFound(f"no verdict {verdict_id!r}", field="verdict_id")
    body = verdict.model_dump(mode="json")
    rubric = runtime.rubrics.get_by_hash(verdict.rubric_hash)
    if rubric is not None:
        agg = aggregate(
            rubric,
            {k: a.score for k, a in verdict.axes.items()},
            {k: a.expected for k, a in verdict.axes.items()},
            distributions=level_distributions(verdict.axes),
        )
        body.update(agg.model_dump(mode="json"))
    return FastJSONResponse(body)
