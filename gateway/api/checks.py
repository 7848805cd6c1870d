"""Credit checks over HTTP (CONTRACT.md "Credit checks"): ask before approving, record the measure, list the kept.

Operators may always call these; a source key needs the ``credit-checks`` kind (``keys create --kinds
credit-checks``), so the approval system can ask without being able to read every record. The check service is
made on first use and shares the national target's breaker and rate limit with the delivery worker when one runs
in this process.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.auth import CHECKS, Principal, authenticate, forbid
from gateway.api.problems import Problem, invalid
from gateway.checks import Advice, CheckBody, CreditChecks, IdentifierRefused, MeasureBody
from gateway.intake import read_json
from gateway.services import Services
from schemas.errors import FieldError, from_pydantic

_made = threading.Lock()


@asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[None]:
    """Close the check service's connections and threads with the app (merged into the app's lifespan)."""
    yield
    made: CreditChecks | None = getattr(app.state, "credit_checks", None)
    if made is not None:
        made.close()


router = APIRouter(prefix="/api/v1/credit-checks", tags=["credit checks"], lifespan=_lifespan)


async def checker(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "operator" and not principal.checks:
        raise forbid(principal, f"run credit checks (a source key needs the kind {CHECKS!r})")
    return principal


CheckerDep = Annotated[Principal, Depends(checker)]


def service(request: Request) -> CreditChecks:
    state = request.app.state
    with _made:
        found: CreditChecks | None = getattr(state, "credit_checks", None)
        if found is None:
            services: Services = state.services
            gate = services.worker.gates.get("national") if services.worker is not None else None
            found = CreditChecks(services.settings, services.store, services.clock, gate)
            state.credit_checks = found
    return found


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


T = TypeVar("T", bound=BaseModel)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with its local ``$defs`` references written out (they would not resolve inside OpenAPI)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    inlined = _inline(schema, schema.get("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inlined}}}}


async def _read(request: Request, model: type[T]) -> T:
    """The body read by hand so that errors name the field as the contract writes it (``subject.uscc``)."""
    services: Services = request.app.state.services
    data = await read_json(request, services.settings.max_body_bytes)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(from_pydantic(exc), "the request breaks the contract's rules; nothing was stored") from None


@router.post(
    "",
    summary="Check a subject's credit record before an approval (审批前信用查询)",
    status_code=201,
    openapi_extra=_body_schema(CheckBody),
)
async def run_check(request: Request, principal: CheckerDep) -> Response:
    body = await _read(request, CheckBody)
    checks = service(request)
    try:
        found = await run_in_threadpool(checks.run, principal.actor, body)
    except IdentifierRefused as exc:
        error = FieldError("subject.id_number", "invalid_id_number", str(exc))
        raise Problem(
            422, "validation-failed", "The subject is not identified", "the ID number is not valid", errors=[error]
        ) from None
    return _json(found, 201)


@router.post(
    "/{check_id}/measure",
    summary="Record the joint reward/punishment measure taken (联合奖惩措施)",
    openapi_extra=_body_schema(MeasureBody),
)
async def record_measure(check_id: int, request: Request, principal: CheckerDep) -> Response:
    body = await _read(request, MeasureBody)
    return _json(await run_in_threadpool(service(request).measure, principal.actor, check_id, body))


@router.get("", summary="The kept checks (留存查询记录), ID numbers masked")
async def list_checks(
    request: Request,
    principal: CheckerDep,
    from_: Annotated[dt.date | None, Query(alias="from", description="first day (Asia/Shanghai)")] = None,
    to: Annotated[dt.date | None, Query(description="last day (Asia/Shanghai), included")] = None,
    department: str | None = None,
    advice: Advice | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[int | None, Query(ge=0, description="continue after this check id")] = None,
) -> Response:
    items = await run_in_threadpool(
        service(request).listing,
        start=from_,
        end=to,
        department=department,
        advice=advice,
        limit=limit,
        after_id=after_id,
    )
    return _json({"items": items, "next_after_id": items[-1]["id"] if len(items) == limit else None})


@router.get("/{check_id}", summary="One kept check with its measures")
async def get_check(check_id: int, request: Request, principal: CheckerDep) -> Response:
    return _json(await run_in_threadpool(service(request).get, check_id))
