"""Signing in and out, the overview (with its poll), record search and a record's timeline, credit checks."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.api.docs import MAX_ID
from gateway.console import actions, reads
from gateway.console.render import page, secure_headers
from gateway.console.render import refused as refused_page
from gateway.console.session import COOKIE, PostedDep, SessionDep, clear_cookie, context, cross_site, people, set_cookie
from gateway.people import SignInRefused
from gateway.services.bundle import Services
from outbox import search
from schemas.enums import Kind

ARTICLE_KINDS = [k.value for k in Kind if k.value in ("cases", "news")]

router = APIRouter(prefix="/console", include_in_schema=False)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("/login")
async def login_form(request: Request) -> Response:
    return page("login.html", {"me": None, "message": None, "username": ""})


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form(max_length=200)], password: Annotated[str, Form(max_length=2000)]
) -> Response:
    if cross_site(request):
        return refused_page("登录表单来自其他网站，已拒绝")
    try:
        signed = await run_in_threadpool(people(request).sign_in, username, password)
    except SignInRefused as refused:
        return page("login.html", {"me": None, "message": str(refused), "username": username}, status=401)
    response = RedirectResponse("/console/", status_code=303, headers=secure_headers())
    set_cookie(request, response, signed.token)
    return response


@router.post("/logout")
async def logout(request: Request, form: PostedDep) -> Response:
    await run_in_threadpool(people(request).sign_out, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/console/login", status_code=303)
    clear_cookie(response)
    return response


async def _overview(request: Request, current: SessionDep) -> dict[str, object]:
    """The API's target status and the console's own figures, read at the same time (two connections)."""
    standings = request.app.state.console_standings
    targets, view = await asyncio.gather(
        actions.target_status(_services(request)),
        run_in_threadpool(reads.overview, _services(request), standings),
    )
    return reads.with_status(view, targets)


@router.get("/")
async def overview(request: Request, current: SessionDep) -> Response:
    view = await _overview(request, current)
    chart = _chart(view["trend"], str(view["month"]))
    return page("overview.html", context(current, nav="overview", view=view, chart=chart))


@router.get("/overview.json")
async def overview_json(request: Request, current: SessionDep) -> Response:
    """The figures the overview's poll (static/console.js) writes into the page every few seconds."""
    view = await _overview(request, current)
    return JSONResponse(reads.overview_json(view), headers={"Cache-Control": "no-store"})


def _chart(trend: object, month: str) -> dict[str, object]:
    """The 12-month 公示率 trend as points of an inline SVG polyline (no chart library, nothing to load); a month
    without counted deliveries has a label and no point."""
    known = {m["month"]: m for m in trend} if isinstance(trend, list) else {}
    year, number = int(month[:4]), int(month[5:7])
    labels_for = [f"{year + (number - 12 + i - 1) // 12}-{(number - 12 + i - 1) % 12 + 1:02d}" for i in range(1, 13)]
    months = [known.get(m, {"month": m, "rate": None}) for m in labels_for]
    width, height, left, top = 560, 160, 40, 10
    step = (width - left - 10) / max(1, len(months) - 1)
    points, labels = [], []
    for i, m in enumerate(months):
        x = left + i * step
        labels.append({"x": round(x, 1), "month": m["month"][5:], "rate": reads.rate_text(m["rate"])})
        if m["rate"] is not None:
            points.append({"x": round(x, 1), "y": round(top + (1 - m["rate"]) * (height - top - 20), 1)})
    return {
        "width": width,
        "height": height,
        "points": points,
        "line": " ".join(f"{p['x']},{p['y']}" for p in points),
        "labels": labels,
        "grid": [
            {"y": round(top + (1 - r) * (height - top - 20), 1), "label": f"{int(r * 100)}%"} for r in (0, 0.5, 1)
        ],
    }


@router.get("/records")
async def records(request: Request, current: SessionDep) -> Response:
    params = dict(request.query_params.items())
    chosen = reads.parse_search(params)
    searched = any(v for k, v in params.items() if k != "page")
    rows, more = await run_in_threadpool(reads.run_search, _services(request), chosen) if searched else ([], False)
    keep = {k: v for k, v in params.items() if k != "page" and v}
    return page(
        "records.html",
        context(
            current,
            nav="records",
            params=params,
            chosen=chosen,
            searched=searched,
            rows=rows,
            more=more,
            keep=keep,
            targets=[name for name, _ in _services(request).settings.targets.items()],
        ),
    )


@router.get("/records/{record_id}")
async def record(request: Request, current: SessionDep, record_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
    mask = not current.person.role.may_act
    view = await run_in_threadpool(lambda: reads.timeline(_services(request), record_id, mask=mask))
    if view is None:
        return page("missing.html", context(current, what=f"记录 #{record_id} 不存在"), status=404)
    return page("record.html", context(current, nav="records", view=view))


@router.get("/checks")
async def checks(request: Request, current: SessionDep) -> Response:
    services = _services(request)
    rows = await run_in_threadpool(lambda: services.store.db.read(lambda conn: search.newest_checks(conn, limit=100)))
    return page("checks.html", context(current, nav="checks", rows=rows))


@router.get("/articles")
async def articles(request: Request, current: SessionDep) -> Response:
    services = _services(request)

    def read(conn: Any) -> dict[str, list[dict[str, Any]]]:
        return {kind: search.latest(conn, kind, limit=50) for kind in ARTICLE_KINDS}

    found = await run_in_threadpool(services.store.db.read, read)
    return page("articles.html", context(current, nav="articles", found=found))
