"""Pages that act: dead letters (requeue, cancel), targets (pause, resume, replay, reconcile), reports.

Every POST passes ``session.acting`` (CSRF token, operator or admin) and then one call of ``actions``; the page
that answers says what was done, in numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.docs import MAX_ID
from gateway.console import actions
from gateway.console.render import back, page
from gateway.console.session import ActingDep, Posted, SessionDep, context
from gateway.people import Session
from gateway.reports.render import MEDIA_TYPES, render
from gateway.services.bundle import Services
from schemas.periods import PeriodError, parse_period

router = APIRouter(prefix="/console", include_in_schema=False)
FILTERS = ("target", "kind", "department", "code")
FORMATS = ("xlsx", "html", "docx", "csv", "json")
PAGE = 100


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _targets(services: Services) -> list[str]:
    return services.operations.target_names()


# -- dead letters ---------------------------------------------------------------------------------------------


@router.get("/dead-letters")
async def dead_letters(request: Request, current: SessionDep) -> Response:
    services = _services(request)
    filters = {k: request.query_params.get(k) or None for k in FILTERS}
    try:
        page_no = max(1, int(request.query_params.get("page") or 1))
    except ValueError:
        page_no = 1
    total, items = await actions.dead_letters(services, **filters, limit=PAGE, offset=(page_no - 1) * PAGE)
    return page(
        "dead_letters.html",
        context(
            current,
            nav="dead-letters",
            filters=filters,
            total=total,
            items=items,
            page_no=page_no,
            pages=max(1, (total + PAGE - 1) // PAGE),
            keep={k: v for k, v in filters.items() if v},
            targets=_targets(services),
            notice=request.query_params.get("notice"),
        ),
    )


async def _matching(services: Services, posted: Posted) -> list[int]:
    """Every dead delivery the filter of the form matches (the "all matching" choice)."""
    filters = {k: posted.text(k) for k in FILTERS}
    ids: list[int] = []
    while True:
        total, items = await actions.dead_letters(services, **filters, limit=1000, offset=len(ids))
        ids.extend(int(i["id"]) for i in items)
        if not items or len(ids) >= total:
            return ids


@router.post("/dead-letters")
async def dead_letters_action(request: Request, posted: ActingDep) -> Response:
    services = _services(request)
    op = posted.text("op")
    if posted.text("scope") == "all":
        ids = await _matching(services, posted)
    else:
        try:
            ids = [int(i) for i in posted.all("ids")]
        except ValueError:
            return back("/console/dead-letters", notice="投递编号无效")
    keep = {k: v for k in FILTERS if (v := posted.text(k))}
    if not ids:
        return back("/console/dead-letters", **keep, notice="没有选中任何投递")
    actor = posted.session.person.actor
    if op == "requeue":
        count = await actions.requeue(services, actor, ids)
        notice = f"已重新投递 {count} 条"
    elif op == "cancel":
        count = await actions.cancel(services, actor, ids, posted.text("reason"))
        notice = f"已放弃 {count} 条"
    else:
        return back("/console/dead-letters", **keep, notice="未知操作")
    return back("/console/dead-letters", **keep, notice=notice)


# -- targets --------------------------------------------------------------------------------------------------


@router.get("/targets")
async def targets(request: Request, current: SessionDep) -> Response:
    return await _targets_page(request, current)


async def _targets_page(request: Request, current: Session, **extra: Any) -> Response:
    services = _services(request)
    status = await actions.target_status(services)
    runs = await run_in_threadpool(lambda: services.housekeeping.reconciliations(limit=20))
    return page(
        "targets.html",
        context(
            current,
            nav="targets",
            status=status,
            runs=runs,
            notice=request.query_params.get("notice"),
            today=services.housekeeping.today().isoformat(),
            **extra,
        ),
    )


def _unknown(services: Services, target: str) -> Response | None:
    """The way back to the targets page with a notice when ``target`` is not one; None when it is."""
    if target in _targets(services):
        return None
    return back("/console/targets", notice=f"没有名为 {target} 的目标平台")


@router.post("/targets/{target}/pause")
async def pause(request: Request, target: str, posted: ActingDep) -> Response:
    services = _services(request)
    if (refused := _unknown(services, target)) is not None:
        return refused
    await actions.pause(services, posted.session.person.actor, target, posted.text("reason"))
    return back("/console/targets", notice=f"{target} 已暂停")


@router.post("/targets/{target}/resume")
async def resume(request: Request, target: str, posted: ActingDep) -> Response:
    services = _services(request)
    if (refused := _unknown(services, target)) is not None:
        return refused
    await actions.resume(services, posted.session.person.actor, target)
    return back("/console/targets", notice=f"{target} 已恢复推送")


@router.post("/targets/{target}/replay")
async def replay(request: Request, target: str, posted: ActingDep) -> Response:
    """First a dry run (the list of what would be sent); the list's own button sends it."""
    services = _services(request)
    if (refused := _unknown(services, target)) is not None:
        return refused
    try:
        since = dt.date.fromisoformat(posted.text("since") or "")
    except ValueError:
        return back("/console/targets", notice="重放起始日期格式应为 YYYY-MM-DD")
    dry_run = posted.text("confirm") != "yes"
    plan = await actions.replay(services, posted.session.person.actor, target, since, dry_run)
    if not dry_run:
        return back("/console/targets", notice=f"已向 {target} 重放 {len(plan)} 条")
    return await _targets_page(request, posted.session, replay={"target": target, "since": since, "plan": plan})


@router.post("/targets/{target}/reconcile")
async def reconcile(request: Request, target: str, posted: ActingDep) -> Response:
    services = _services(request)
    if (refused := _unknown(services, target)) is not None:
        return refused
    try:
        run = await actions.reconcile(services, posted.session.person.actor, target)
    except actions.TargetDisabled:
        return back("/console/targets", notice=f"{target} 未启用，无法对账")
    return back(f"/console/reconciliations/{run['id']}")


@router.get("/reconciliations")
async def reconciliations(request: Request, current: SessionDep) -> Response:
    services = _services(request)
    target = request.query_params.get("target") or None
    runs = await run_in_threadpool(lambda: services.housekeeping.reconciliations(target=target, limit=100))
    return page("reconciliations.html", context(current, nav="reconciliations", runs=runs, run=None))


@router.get("/reconciliations/{run_id}")
async def reconciliation(
    request: Request, current: SessionDep, run_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    run = await run_in_threadpool(_services(request).housekeeping.reconciliation, run_id)
    if run is None:
        return page("missing.html", context(current, what=f"对账记录 #{run_id} 不存在"), status=404)
    return page("reconciliations.html", context(current, nav="reconciliations", runs=[], run=run))


# -- reports --------------------------------------------------------------------------------------------------


@router.get("/reports")
async def reports(request: Request, current: SessionDep) -> Response:
    services = _services(request)
    runs = await run_in_threadpool(lambda: services.housekeeping.reports(limit=100))
    today = services.housekeeping.today()
    last_month = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return page(
        "reports.html",
        context(
            current,
            nav="reports",
            runs=runs,
            formats=FORMATS,
            default_period=last_month,
            notice=request.query_params.get("notice"),
        ),
    )


@router.post("/reports")
async def create_report(request: Request, posted: ActingDep) -> Response:
    services = _services(request)
    text = posted.text("period") or ""
    try:
        period = parse_period(text)
        as_of = dt.date.fromisoformat(a) if (a := posted.text("as_of")) else None
    except (PeriodError, ValueError) as exc:
        return back("/console/reports", notice=f"统计期间或截止日期有误：{exc}")
    report_id, _ = await actions.create_report(services, posted.session.person.actor, period, as_of)
    return back("/console/reports", notice=f"已生成报告 #{report_id}（{period.label}）")


@router.get("/reports/{report_id}.{fmt}")
async def download_report(
    request: Request, current: SessionDep, report_id: Annotated[int, Path(ge=1, le=MAX_ID)], fmt: str
) -> Response:
    if fmt not in FORMATS:
        return page("missing.html", context(current, what=f"不支持的格式 {fmt}"), status=404)
    run = await run_in_threadpool(_services(request).housekeeping.report, report_id)
    if run is None:
        return page("missing.html", context(current, what=f"报告 #{report_id} 不存在"), status=404)
    body = await run_in_threadpool(render, run["data"], fmt)  # type: ignore[arg-type]
    name = f"gongshilv-{run['period']}-{report_id}.{fmt}"
    return Response(
        body, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
