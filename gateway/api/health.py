"""Liveness, readiness and metrics: the endpoints orchestrators and Prometheus poll."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from gateway import target_health
from gateway.api import docs
from gateway.api.auth import check_key
from gateway.api.problems import Problem
from gateway.services.bundle import Services
from gateway.services.errors import StoreError

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers (no key needed)", response_model=docs.Health)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable and migrated (no key needed)",
    response_model=docs.Ready,
    responses=docs.problems(503),
)
async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        current = await run_in_threadpool(services.schema_is_current)
    except StoreError as exc:
        raise Problem(503, "not-ready", "Not ready", f"database unreachable: {exc}") from None
    if not current:
        raise Problem(503, "not-ready", "Not ready", "database schema is not current: run `credit-gateway migrate`")
    return JSONResponse({"status": "ready", "database": "ok", "schema": "current"})


@router.get(
    "/metrics",
    summary="Prometheus metrics (a key is needed when metrics_require_key is set)",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **docs.problems(401),
    },
)
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    if services.settings.metrics_require_key:
        await check_key(request)
    # every target's shared health, whichever process sends to it (serve with DELIVERY__IN_SERVE=false too)
    try:
        health = await run_in_threadpool(target_health.report, services.settings, services.store, services.clock)
    except StoreError:  # the database is down: the rest of the metrics still answer (readyz says why)
        health = {}
    services.metrics.health(health)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
