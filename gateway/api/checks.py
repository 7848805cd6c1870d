"""Credit checks over HTTP (CONTRACT.md "Credit checks"): ask before approving, record the measure, list the kept.

Operators may always call these; a source key needs the ``credit-checks`` kind (``keys create --kinds
credit-checks``), so the approval system can ask without being able to read every record. The check service is
made on first use and shares the national target's breaker and rate limit with the delivery worker when one runs
in this process.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.auth import CHECKS, Principal, authenticate, forbid
from gateway.api.bodies import body_doc, json_body
from gateway.api.problems import Problem
from gateway.checks import Advice, CheckBody, CreditChecks, IdentifierRefused, MeasureBody
from gateway.services.bundle import Services
from schemas.errors import FieldError

router = APIRouter(prefix="/api/v1/credit-checks", tags=["credit checks"])


async def checker(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "operator" and not principal.checks:
        raise forbid(principal, f"run credit checks (a source key needs the kind {CHECKS!r})")
    return principal


CheckerDep = Annotated[Principal, Depends(checker)]


def service(request: Request) -> CreditChecks:
    services: Services = request.app.state.services
    return services.checks()


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "",
    summary="Check a subject's credit record before an approval (审批前信用查询)",
    status_code=201,
    response_model=docs.CreditCheck,
    responses={201: {"description": "the check, kept"}, **docs.problems(400, 401, 403, 413, 415, 422, 503)},
    openapi_extra=body_doc(CheckBody),
)
async def run_check(
    request: Request, principal: CheckerDep, body: Annotated[CheckBody, Depends(json_body(CheckBody, checker))]
) -> Response:
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
    response_model=docs.Open,
    responses=docs.problems(400, 401, 403, 404, 413, 415, 422, 503),
    openapi_extra=body_doc(MeasureBody),
)
async def record_measure(
    check_id: Annotated[int, Path(ge=1, le=docs.MAX_ID)],
    request: Request,
    principal: CheckerDep,
    body: Annotated[MeasureBody, Depends(json_body(MeasureBody, checker))],
) -> Response:
    return _json(await run_in_threadpool(service(request).measure, principal.actor, check_id, body))


@router.get(
    "",
    summary="The kept checks (留存查询记录), ID numbers masked",
    response_model=docs.CreditChecks,
    responses=docs.problems(401, 403, 422, 503),
)
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


@router.get(
    "/{check_id}",
    summary="One kept check with its measures",
    response_model=docs.CreditCheck,
    responses=docs.problems(401, 403, 404, 422, 503),
)
async def get_check(
    check_id: Annotated[int, Path(ge=1, le=docs.MAX_ID)], request: Request, principal: CheckerDep
) -> Response:
    return _json(await run_in_threadpool(service(request).get, check_id))
