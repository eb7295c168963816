"""The reward-model registry: list versions, activate one, and hot-reload it into the running engine."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_admin_key
from api.deps import RuntimeDep, SessionDep
from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.reward_models import Swap
from judge.store.reward_models_repository import RewardModelRepository

router = APIRouter(tags=["reward models"])


class ActivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Annotated[int, Field(ge=1, le=2**31 - 1)]


def _swaps(swaps: list[Swap]) -> list[dict[str, Any]]:
    return [
        {
            "ref": s.ref,
            "previous": s.previous,
            "current": s.current,
            "version": s.record.version if s.record is not None else None,
        }
        for s in swaps
    ]


@router.get("/reward-models", responses=ERROR_RESPONSES)
async def list_reward_models(runtime: RuntimeDep, session: SessionDep) -> FastJSONResponse:
    """Every registered version, and what each loaded engine serves now."""
    records = await RewardModelRepository(session).list()
    return FastJSONResponse(
        {
            "data": [r.model_dump(mode="json") for r in records],
            "loaded": runtime.reward_models.loaded(),
        }
    )


@router.post("/reward-models/{name}/activate", responses=ERROR_RESPONSES, dependencies=[Depends(require_admin_key)])
async def activate_reward_model(
    name: str, body: ActivateRequest, runtime: RuntimeDep, session: SessionDep
) -> FastJSONResponse:
    """Make ``name@version`` the active version and swap it into engines serving ``name`` (no restart)."""
    record = await RewardModelRepository(session).set_active(name, body.version)
    await session.commit()
    swaps = await runtime.reward_models.reload(name)
    return FastJSONResponse({"model": record.model_dump(mode="json"), "swapped": _swaps(swaps)})


@router.post("/reward-models/{name}/reload", responses=ERROR_RESPONSES, dependencies=[Depends(require_admin_key)])
async def reload_reward_model(name: str, runtime: RuntimeDep) -> FastJSONResponse:
    """Swap the active version of ``name`` (set by ``rubric-judge rm activate``) into the engines serving it."""
    swaps = await runtime.reward_models.reload(name)
    return FastJSONResponse({"name": name, "swapped": _swaps(swaps)})
