"""Operators' view of the targets: how many deliveries stand in each state, and each target's health."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway import target_health
from gateway.api import docs
from gateway.api.auth import Principal, authenticate, forbid
from gateway.services import Services

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
    counts = await run_in_threadpool(services.store.delivery_counts)
    paused = await run_in_threadpool(services.store.paused_targets)
    # shared through the database: the same whichever process (this one or a worker) talks to the target
    health = await run_in_threadpool(target_health.report, services.settings, services.store, services.clock)
    body = [
        {
            "target": name,
            "enabled": t.enabled,
            "kinds": [k.value for k in t.kinds],
            "base_url": t.base_url,
            "paused": paused.get(name),
            "deliveries": counts.get(name, {}),
            "health": health.get(name),
        }
        for name, t in services.settings.targets.items()
    ]
    return Response(orjson.dumps({"targets": body}), media_type="application/json")
