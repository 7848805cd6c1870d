"""Operator actions over HTTP: dead letters (list, requeue, cancel), pause/resume and replay of a target.

Every call needs an operator key and lands in the audit log with the key's name.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.auth import Principal, authenticate, forbid
from gateway.api.problems import Problem
from gateway.clock import SHANGHAI
from gateway.services import Services

router = APIRouter(prefix="/api/v1", tags=["operations"])


async def operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "operator":
        raise forbid(principal, "take operator actions")
    return principal


OperatorDep = Annotated[Principal, Depends(operator)]


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def _target(services: Services, target: str) -> str:
    names = [name for name, _ in services.settings.targets.items()]
    if target not in names:
        raise Problem(404, "unknown-target", "No such target", f"{target!r} is not one of {', '.join(names)}")
    return target


class Ids(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=10_000)
    reason: str | None = Field(default=None, max_length=500)


class Pause(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class Replay(BaseModel):
    since: dt.date = Field(description="re-send what the target accepted on or after this day (Asia/Shanghai)")
    dry_run: bool = Field(default=True, description="only list what would be sent")


@router.get("/dead-letters", summary="Deliveries that failed for good, with the target's code and message")
async def dead_letters(
    request: Request,
    _: OperatorDep,
    target: str | None = None,
    kind: str | None = None,
    department: str | None = None,
    code: Annotated[str | None, Query(description="the target's error code")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    services: Services = request.app.state.services
    total, items = await run_in_threadpool(
        services.store.dead_letters,
        target=target,
        kind=kind,
        department=department,
        code=code,
        limit=limit,
        offset=offset,
    )
    return _json({"total": total, "items": items})


@router.post("/dead-letters/requeue", summary="Send dead deliveries again, with a fresh retry budget")
async def requeue(body: Ids, request: Request, principal: OperatorDep) -> Response:
    services: Services = request.app.state.services
    count = await run_in_threadpool(
        services.store.requeue, ids=body.ids, actor=principal.actor, now=services.clock.now()
    )
    if services.worker is not None:
        services.worker.wake(services.clients_names())
    return _json({"requeued": count})


@router.post("/dead-letters/cancel", summary="Give up on deliveries (dead, pending or waiting to retry)")
async def cancel(body: Ids, request: Request, principal: OperatorDep) -> Response:
    services: Services = request.app.state.services
    count = await run_in_threadpool(
        services.store.cancel, ids=body.ids, actor=principal.actor, now=services.clock.now(), reason=body.reason
    )
    return _json({"cancelled": count})


@router.post("/targets/{target}/pause", summary="Stop pushing to a target (every worker obeys)")
async def pause(target: str, request: Request, principal: OperatorDep, body: Pause | None = None) -> Response:
    services: Services = request.app.state.services
    await run_in_threadpool(
        services.store.set_paused,
        target=_target(services, target),
        paused=True,
        reason=body.reason if body else None,
        actor=principal.actor,
        now=services.clock.now(),
    )
    return _json({"target": target, "paused": True})


@router.post("/targets/{target}/resume", summary="Push to a paused target again")
async def resume(target: str, request: Request, principal: OperatorDep) -> Response:
    services: Services = request.app.state.services
    await run_in_threadpool(
        services.store.set_paused,
        target=_target(services, target),
        paused=False,
        reason=None,
        actor=principal.actor,
        now=services.clock.now(),
    )
    if services.worker is not None:
        services.worker.wake([target])
    return _json({"target": target, "paused": False})


@router.post("/targets/{target}/replay", summary="Re-send what a target accepted since a day (dry run by default)")
async def replay(target: str, body: Replay, request: Request, principal: OperatorDep) -> Response:
    services: Services = request.app.state.services
    since = dt.datetime.combine(body.since, dt.time(), SHANGHAI)
    plan = await run_in_threadpool(
        services.store.replay,
        target=_target(services, target),
        since=since,
        dry_run=body.dry_run,
        actor=principal.actor,
        now=services.clock.now(),
    )
    if services.worker is not None and not body.dry_run:
        services.worker.wake([target])
    return _json({"target": target, "dry_run": body.dry_run, "count": len(plan), "items": plan})
