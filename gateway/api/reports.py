"""公示率 reports, the at-risk view and reconciliation runs over HTTP (operator keys).

* ``GET /api/v1/rates?period=2026-10`` computes a report live (JSON) without storing it;
* ``POST /api/v1/reports`` computes and stores one; ``GET /api/v1/reports`` lists stored runs;
  ``GET /api/v1/reports/{id}?format=xlsx|csv|json|html|docx`` downloads one in any format (docx: the 通报);
* ``GET /api/v1/deliveries/at-risk`` lists unpublished deliveries due within N working days, earliest first;
* ``POST /api/v1/targets/{target}/reconcile`` runs a reconciliation now; ``GET /api/v1/reconciliations`` and
  ``GET /api/v1/reconciliations/{id}`` show stored runs and their findings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.bodies import body_doc, json_body
from gateway.api.docs import Day
from gateway.api.operations import OperatorDep, _json, _target, operator
from gateway.api.problems import PARAMS_TITLE, Problem, invalid
from gateway.housekeeping import Housekeeping
from gateway.reports.render import MEDIA_TYPES, Format, render
from schemas.calendar import OutsideCalendar
from schemas.errors import FieldError
from schemas.periods import Period, PeriodError, parse_period

router = APIRouter(prefix="/api/v1", tags=["reports"])


class NewReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str = Field(description=docs.PERIOD_HELP, json_schema_extra={"pattern": docs.PERIOD_PATTERN})
    as_of: Day | None = Field(default=None, description="judge standings at the end of this day; default today")


def _housekeeping(request: Request) -> Housekeeping:
    return request.app.state.services.housekeeping  # type: ignore[no-any-return]


def _period(text: str, field: str = "period") -> Period:
    try:
        if text != text.strip() or not text.isascii():
            raise PeriodError(f"period {text!r} has spaces or characters other than ASCII digits, '-' and 'Q'")
        return parse_period(text)
    except PeriodError as exc:
        raise invalid([FieldError(field, "invalid_period", str(exc))], str(exc), title=PARAMS_TITLE) from None


@router.get(
    "/rates",
    summary="公示率 for a period, computed now (not stored)",
    response_model=docs.Report,
    responses=docs.problems(401, 403, 422, 503),
)
async def rates(
    request: Request,
    _: OperatorDep,
    period: Annotated[str, Query(description=docs.PERIOD_HELP, json_schema_extra={"pattern": docs.PERIOD_PATTERN})],
    as_of: Annotated[Day | None, Query(description="judge standings at the end of this day; default today")] = None,
) -> Response:
    chosen = _period(period)
    return _json(await run_in_threadpool(_housekeeping(request).compute_report, chosen, as_of=as_of))


@router.post(
    "/reports",
    status_code=201,
    summary="Compute a report and store it",
    response_model=docs.StoredReport,
    responses=docs.problems(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=body_doc(NewReport),
)
async def create_report(
    request: Request, principal: OperatorDep, body: Annotated[NewReport, Depends(json_body(NewReport, operator))]
) -> Response:
    chosen = _period(body.period)
    report_id, data = await run_in_threadpool(
        lambda: _housekeeping(request).create_report(chosen, actor=principal.actor, as_of=body.as_of)
    )
    response = _json({"id": report_id, "period": chosen.label, "summary": data["summary"]["total"]})
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/reports/{report_id}"
    return response


@router.get(
    "/reports",
    summary="Stored reports, newest first (scheduled and on demand)",
    response_model=docs.Items,
    responses=docs.problems(401, 403, 422, 503),
)
async def list_reports(request: Request, _: OperatorDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return _json({"items": await run_in_threadpool(_housekeeping(request).reports, limit=limit)})


@router.get(
    "/reports/{report_id}",
    summary="Download a stored report (json, csv, xlsx, html or docx)",
    response_model=docs.Report,
    responses={
        200: {
            "description": "the report in the asked format (an attachment)",
            "content": {
                MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
                MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                MEDIA_TYPES["html"]: {"schema": {"type": "string"}},
                MEDIA_TYPES["docx"]: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **docs.problems(401, 403, 404, 422, 503),
    },
)
async def get_report(
    report_id: Annotated[int, Path(ge=1, le=docs.MAX_ID)], request: Request, _: OperatorDep, format: Format = "json"
) -> Response:
    run = await run_in_threadpool(_housekeeping(request).report, report_id)
    if run is None:
        raise Problem(404, "unknown-report", "No such report", f"no stored report has id {report_id}")
    body = await run_in_threadpool(render, run["data"], format)
    name = f"gongshilv-{run['period']}-{report_id}.{format}"
    return Response(
        body, media_type=MEDIA_TYPES[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get(
    "/deliveries/at-risk",
    summary="Unpublished deliveries due within N working days, earliest first",
    response_model=docs.AtRisk,
    responses=docs.problems(401, 403, 409, 422, 503),
)
async def at_risk(
    request: Request,
    _: OperatorDep,
    workdays: Annotated[int | None, Query(ge=0, le=60)] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Response:
    try:
        view: dict[str, Any] = await run_in_threadpool(
            lambda: _housekeeping(request).at_risk(workdays=workdays, limit=limit)
        )
    except OutsideCalendar as exc:
        raise Problem(409, "calendar-missing", "Working-day calendar missing", str(exc)) from None
    return _json(view)


@router.post(
    "/targets/{target}/reconcile",
    summary="Compare what a target holds with what we published; repair",
    response_model=docs.Reconciliation,
    responses=docs.problems(401, 403, 404, 409, 422, 503),
)
async def reconcile(target: docs.TargetName, request: Request, principal: OperatorDep) -> Response:
    housekeeping = _housekeeping(request)
    _target(request.app.state.services, target)
    try:
        run = await run_in_threadpool(lambda: housekeeping.reconcile(target, actor=principal.actor))
    except KeyError:
        raise Problem(409, "target-disabled", "Target disabled", f"{target} is not enabled") from None
    return _json(run)


@router.get(
    "/reconciliations",
    summary="Reconciliation runs, newest first",
    response_model=docs.Items,
    responses=docs.problems(401, 403, 422, 503),
)
async def reconciliations(
    request: Request,
    _: OperatorDep,
    target: Annotated[docs.TextParam | None, Query(description="a target name")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    items = await run_in_threadpool(lambda: _housekeeping(request).reconciliations(target=target, limit=limit))
    return _json({"items": items})


@router.get(
    "/reconciliations/{run_id}",
    summary="One reconciliation run with its findings",
    response_model=docs.Reconciliation,
    responses=docs.problems(401, 403, 404, 422, 503),
)
async def reconciliation(
    run_id: Annotated[int, Path(ge=1, le=docs.MAX_ID)], request: Request, _: OperatorDep
) -> Response:
    run = await run_in_threadpool(_housekeeping(request).reconciliation, run_id)
    if run is None:
        raise Problem(404, "unknown-reconciliation", "No such reconciliation run", f"no run has id {run_id}")
    return _json(run)
