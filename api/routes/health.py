"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from api.deps import RuntimeDep
from api.responses import FastJSONResponse
from judge.store.database import ping
from judge.store.schema import schema_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> FastJSONResponse:
    return FastJSONResponse({"status": "ok"})


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> FastJSONResponse:
    """Ready when the database answers with the current schema, and Redis too when one is configured."""
    checks: dict[str, bool] = {"database": await ping(runtime.engine)}
    problems: list[str] = []
    if checks["database"]:
        try:
            problem = (await schema_state(runtime.engine)).problem
        except Exception as exc:  # the database went away between the two queries: not ready either way
            problem = f"cannot read the schema revision ({exc.__class__.__name__})"
        checks["schema"] = problem is None
        if problem is not None:
            problems.append(problem)
    if runtime.settings.redis_url:
        checks["redis"] = await runtime.cache.ping()
    ready = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
    if problems:
        body["problems"] = problems
    return FastJSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
