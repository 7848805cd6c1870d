"""Operators' view of the targets: how many deliveries stand in each state, and each target's health."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.auth import Principal, authenticate, forbid
from gateway.services.bundle import Services

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.get(
    "/targets",
    summary="Per target: enabled, kinds, deliveries by state, breaker and alert (operators)",
    response_model=docs.Targets,
    responses=docs.problems(401, 403, 503),
)
async def list_targets(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> Response:
    if principal.role != "operator":
        raise forbid(principal, "see target status")
    services: Services = request.app.state.services
    body = await run_in_threadpool(services.targets.status)
    return Response(orjson.dumps({"targets": body}), media_type="application/json")
