"""Operator actions over HTTP: dead letters (list, requeue, cancel), pause/resume and replay of a target.

Every call needs an operator key and lands in the audit log with the key's name.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.auth import Principal, authenticate, forbid
from gateway.api.bodies import body_doc, json_body
from gateway.api.docs import MAX_OFFSET, Day, Flag, RowId, TargetName, Text, TextParam
from gateway.api.problems import Problem
from gateway.services.bundle import Services
from gateway.services.errors import UnknownTarget

router = APIRouter(prefix="/api/v1", tags=["operations"])


async def operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "operator":
        raise forbid(principal, "take operator actions")
    return principal


OperatorDep = Annotated[Principal, Depends(operator)]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _target(services: Services, target: str) -> str:
    try:
        return services.operations.known_target(target)
    except UnknownTarget as exc:
        raise Problem(
            404, "unknown-target", "No such target", f"{target!r} is not one of {', '.join(exc.names)}"
        ) from None


class Ids(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[RowId] = Field(min_length=1, max_length=10_000, description="delivery ids (the dead-letter list's)")
    reason: Text | None = Field(default=None, description="why; kept in the audit log")


class Pause(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text | None = Field(default=None, description="why; shown in the target's status")


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Day = Field(description="re-send what the target accepted on or after this day (Asia/Shanghai)")
    dry_run: Flag = Field(default=True, description="only list what would be sent")


@router.get(
    "/dead-letters",
    summary="Deliveries that failed for good, with the target's code and message",
    response_model=docs.DeadLetters,
    responses=docs.problems(401, 403, 422, 503),
)
async def dead_letters(
    request: Request,
    _: OperatorDep,
    target: Annotated[TextParam | None, Query(description="a target name")] = None,
    kind: Annotated[TextParam | None, Query(description="a record kind (licences, ...)")] = None,
    department: Annotated[TextParam | None, Query(description="the record's 责任科室")] = None,
    code: Annotated[TextParam | None, Query(description="the target's error code")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    services: Services = request.app.state.services
    total, items = await run_in_threadpool(
        services.operations.dead_letters,
        target=target,
        kind=kind,
        department=department,
        code=code,
        limit=limit,
        offset=offset,
    )
    return _json({"total": total, "items": items})


@router.post(
    "/dead-letters/requeue",
    summary="Send dead deliveries again, with a fresh retry budget",
    response_model=docs.Requeued,
    responses=docs.problems(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=body_doc(Ids),
)
async def requeue(
    request: Request, principal: OperatorDep, body: Annotated[Ids, Depends(json_body(Ids, operator))]
) -> Response:
    services: Services = request.app.state.services
    count = await run_in_threadpool(services.operations.requeue, principal.actor, body.ids)
    return _json({"requeued": count})


@router.post(
    "/dead-letters/cancel",
    summary="Give up on deliveries (dead, pending or waiting to retry)",
    response_model=docs.Cancelled,
    responses=docs.problems(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=body_doc(Ids),
)
async def cancel(
    request: Request, principal: OperatorDep, body: Annotated[Ids, Depends(json_body(Ids, operator))]
) -> Response:
    services: Services = request.app.state.services
    count = await run_in_threadpool(services.operations.cancel, principal.actor, body.ids, body.reason)
    return _json({"cancelled": count})


@router.post(
    "/targets/{target}/pause",
    summary="Stop pushing to a target (every worker obeys); the body is optional",
    response_model=docs.Paused,
    responses=docs.problems(400, 401, 403, 404, 413, 415, 422, 503),
    openapi_extra=body_doc(Pause, required=False),
)
async def pause(
    target: TargetName,
    request: Request,
    principal: OperatorDep,
    body: Annotated[Pause | None, Depends(json_body(Pause, operator, optional=True))],
) -> Response:
    services: Services = request.app.state.services
    await run_in_threadpool(
        services.operations.pause, principal.actor, _target(services, target), body.reason if body else None
    )
    return _json({"target": target, "paused": True})


@router.post(
    "/targets/{target}/resume",
    summary="Push to a paused target again",
    response_model=docs.Paused,
    responses=docs.problems(401, 403, 404, 422, 503),
)
async def resume(target: TargetName, request: Request, principal: OperatorDep) -> Response:
    services: Services = request.app.state.services
    await run_in_threadpool(services.operations.resume, principal.actor, _target(services, target))
    return _json({"target": target, "paused": False})


@router.post(
    "/targets/{target}/replay",
    summary="Re-send what a target accepted since a day (dry run by default)",
    response_model=docs.ReplayPlan,
    responses=docs.problems(400, 401, 403, 404, 413, 415, 422, 503),
    openapi_extra=body_doc(Replay),
)
async def replay(
    target: TargetName,
    request: Request,
    principal: OperatorDep,
    body: Annotated[Replay, Depends(json_body(Replay, operator))],
) -> Response:
    services: Services = request.app.state.services
    plan = await run_in_threadpool(
        services.operations.replay, principal.actor, _target(services, target), body.since, body.dry_run
    )
    return _json({"target": target, "dry_run": body.dry_run, "count": len(plan), "items": plan})
