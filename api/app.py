"""The FastAPI app factory and its lifespan, which owns the engine's resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import redact
from api.auth import require_api_key
from api.edge import Edge
from api.errors import install_error_handlers
from api.metrics_middleware import RequestMetrics
from api.openapi import install_openapi
from api.request_id import RequestId
from api.routes import classify, health, openrlhf, rewards, rubrics, score, verdicts
from api.routes.agreement import router as agreement_router
from api.routes.feedback import router as feedback_router
from api.routes.jobs import router as jobs_router
from api.routes.judges import router as judges_router
from api.routes.reward_models import router as reward_models_router
from api.routes.simulate import router as simulate_router
from api.routes.studies import router as studies_router
from api.ui.routes import install as install_workbench
from judge import heap
from judge.jobs.service import JobsService
from judge.runtime import Runtime
from judge.scorer import BackendFactory
from judge.settings import Settings, get_settings
from judge.simulator.service import SimulatorService


def create_app(settings: Settings | None = None, *, backend_factory: BackendFactory | None = None) -> FastAPI:
    """Build the app; resources are opened by the lifespan, not here, so importing connects nothing."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The API starts on a database without its schema and says so on /readyz (`serve` refuses it earlier).
        runtime = await Runtime.open(settings or get_settings(), backend_factory=backend_factory, require_schema=False)
        app.state.runtime = runtime
        app.state.jobs = JobsService(runtime)
        app.state.simulator = SimulatorService(runtime)
        # Again here: uvicorn has configured its loggers (and their handlers) by now.
        redact.install()
        heap.settle()  # start-up done: freeze what lives as long as the process
        try:
            yield
        finally:
            await app.state.simulator.aclose()
            await app.state.jobs.aclose()
            await runtime.aclose()

    app = FastAPI(title="rubric-judge", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_openapi(app)
    redact.install()
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestId)
    # Outermost: body-size limit and unstorable bytes in paths/queries, before anything reads the request.
    app.add_middleware(Edge)
    app.include_router(health.router)
    # OpenRLHF's own protocol, at the root where its clients look for it (auth handled by the route).
    app.include_router(openrlhf.router)
    # vLLM's classification API, at the root as vLLM serves it (verl's discriminative reward-model client).
    app.include_router(classify.router)
    v1 = [Depends(require_api_key)]
    for router in (score.router, rubrics.router, verdicts.router, rewards.router):
        app.include_router(router, prefix="/v1", dependencies=v1)
    app.include_router(agreement_router, prefix="/v1", dependencies=v1)
    app.include_router(jobs_router, prefix="/v1", dependencies=v1)
    app.include_router(feedback_router, prefix="/v1", dependencies=v1)
    app.include_router(reward_models_router, prefix="/v1", dependencies=v1)
    app.include_router(studies_router, prefix="/v1", dependencies=v1)
    # The raters' workbench: raters authenticate with their own token, not an API key.
    install_workbench(app)
    app.include_router(simulate_router, prefix="/v1", dependencies=v1)
    app.include_router(judges_router, prefix="/v1", dependencies=v1)
    return app
