"""GET /v1/judges: the configured judge profiles, without secrets (the CLI's ``judges list``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep
from api.responses import FastJSONResponse
from judge.judges.catalog import catalog

router = APIRouter(tags=["judges"])


@router.get("/judges")
async def list_judges(runtime: RuntimeDep) -> FastJSONResponse:
    """``{data: [{name, backend, rubric_kinds, model, base_url, api_key_env, api_key_set, ...}]}``."""
    return FastJSONResponse({"data": catalog(runtime.profiles)})
