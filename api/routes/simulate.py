"""POST /v1/simulate (the patient's next turn) and POST /v1/perturb (a message at each perturbation level)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.responses import FastJSONResponse
from api.schemas import ERROR_RESPONSES
from judge.simulator.schemas import PerturbRequest, SimulateRequest
from judge.simulator.service import SimulatorService

router = APIRouter(tags=["simulator"])


def _service(request: Request) -> SimulatorService:
    service: SimulatorService = request.app.state.simulator
    return service


@router.post(
    "/simulate",
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": SimulateRequest.model_json_schema()}}}},
)
async def simulate(request: Request) -> FastJSONResponse:
    """``{message: {role: "user", content}, done, reason, usage}``; ``message`` is null once the visit is over."""
    body = SimulateRequest.model_validate_json(await request.body())
    return FastJSONResponse(await _service(request).simulate(body))


@router.post(
    "/perturb",
    responses=ERROR_RESPONSES,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": PerturbRequest.model_json_schema()}}}},
)
async def perturb(request: Request) -> FastJSONResponse:
    """One rewrite per level, each labelled with the perturbation types it used; clinical facts kept."""
    body = PerturbRequest.model_validate_json(await request.body())
    return FastJSONResponse(await _service(request).perturb_request(body))
