"""公示率 reports, the at-risk view and reconciliation runs over HTTP (operator keys).

* ``GET /api/v1/rates?period=2026-10`` computes a report live (JSON) without storing it;
* ``POST /api/v1/reports`` computes and stores one; ``GET /api/v1/reports`` lists stored runs;
  ``GET /api/v1/reports/{id}?format=xlsx|csv|json|html|docx`` downloads one in any format (docx: the 通报);
* ``GET /api/v1/deliveries/at-risk`` lists unpublished deliveries due within N working days, earliest first;
* ``POST /api/v1/targets/{target}/reconcile`` runs a reconciliation now; ``GET /api/v1/reconciliations`` and
  ``GET /api/v1/reconciliations/{id}`` show stored runs and their findings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.operations import OperatorDep, _json, _target
from gateway.api.problems import Problem
from gateway.housekeeping import Housekeeping
from gateway.reports.periods import Period, PeriodError, parse_period
from gateway.reports.render import MEDIA_TYPES, Format, render
from gateway.workdays import OutsideCalendar

router = APIRouter(prefix="/api/v1", tags=["reports"])


class NewReport(BaseModel):
    period: str = Field(description="2026-10 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-05 (day)")
    as_of: dt.date | None = Field(default=None, description="judge standings at the end of this day; default today")


def _housekeeping(request: Request) -> Housekeeping:
    return request.app.state.services.housekeeping  # type: ignore[no-any-return]


def _period(text: str, field: str = "period") -> Period:
    try:
        return parse_period(text)
    except PeriodError as exc:
        raise Problem(422, "invalid-period", "Invalid period", str(exc), extra={"field": field}) from None


@router.get("/rates", summary="公示率 for a period, computed now (not stored)")
async def rates(
    request: Request,
    _: OperatorDep,
    period: Annotated[str, Query(description="2026-10, 2026-Q4, 2026 or 2026-10-05")],
    as_of: dt.date | None = None,
) -> Response:
    chosen = _period(period)
    return _json(await run_in_threadpool(_housekeeping(request).compute_report, chosen, as_of=as_of))


@router.post("/reports", status_code=201, summary="Compute a report and store it")
async def create_report(body: NewReport, request: Request, principal: OperatorDep) -> Response:
    chosen = _period(body.period)
    report_id, data = await run_in_threadpool(
        lambda: _housekeeping(request).create_report(chosen, actor=principal.actor, as_of=body.as_of)
    )
    response = _json({"id": report_id, "period": chosen.label, "summary": data["summary"]["total"]})
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/reports/{report_id}"
    return response


@router.get("/reports", summary="Stored reports, newest first (scheduled and on demand)")
async def list_reports(request: Request, _: OperatorDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return _json({"items": await run_in_threadpool(_housekeeping(request).store.reports, limit=limit)})


@router.get("/reports/{report_id}", summary="Download a stored report (json, csv, xlsx, html or docx)")
async def get_report(report_id: int, request: Request, _: OperatorDep, format: Format = "json") -> Response:
    run = await run_in_threadpool(_housekeeping(request).store.report, report_id)
    if run is None:
        raise Problem(404, "unknown-report", "No such report", f"no stored report has id {report_id}")
    body = await run_in_threadpool(render, run["data"], format)
    name = f"gongshilv-{run['period']}-{report_id}.{format}"
    return Response(
        body, media_type=MEDIA_TYPES[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get("/deliveries/at-risk", summary="Unpublished deliveries due within N working days, earliest first")
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


@router.post("/targets/{target}/reconcile", summary="Compare what a target holds with what we published; repair")
async def reconcile(target: str, request: Request, principal: OperatorDep) -> Response:
    housekeeping = _housekeeping(request)
    _target(request.app.state.services, target)
    try:
        run = await run_in_threadpool(lambda: housekeeping.reconcile(target, actor=principal.actor))
    except KeyError:
        raise Problem(409, "target-disabled", "Target disabled", f"{target} is not enabled") from None
    worker = request.app.state.services.worker
    if worker is not None and run["requeued"]:
        worker.wake([target])
    return _json(run)


@router.get("/reconciliations", summary="Reconciliation runs, newest first")
async def reconciliations(
    request: Request, _: OperatorDep, target: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Response:
    items = await run_in_threadpool(lambda: _housekeeping(request).store.reconciliations(target=target, limit=limit))
    return _json({"items": items})


@router.get("/reconciliations/{run_id}", summary="One reconciliation run with its findings")
async def reconciliation(run_id: int, request: Request, _: OperatorDep) -> Response:
    run = await run_in_threadpool(_housekeeping(request).store.reconciliation, run_id)
    if run is None:
        raise Problem(404, "unknown-reconciliation", "No such reconciliation run", f"no run has id {run_id}")
    return _json(run)
