"""The audit log (everyone reads it), API keys and people (admins only)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api.auth import CHECKS
from gateway.console import actions
from gateway.console.render import back, page
from gateway.console.session import AdminPageDep, AdminPostDep, SessionDep, context, people
from gateway.people import PeopleError
from gateway.services.bundle import Services
from outbox import errors
from outbox.keys import ROLES as KEY_ROLES
from schemas.calendar import ZONE as SHANGHAI
from schemas.enums import Kind

router = APIRouter(prefix="/console", include_in_schema=False)


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.get("/audit")
async def audit(request: Request, current: SessionDep) -> Response:
    params = request.query_params
    problems: list[str] = []
    bounds: dict[str, dt.datetime | None] = {"since": None, "until": None}
    for name in bounds:
        if value := params.get(name):
            try:
                day = dt.date.fromisoformat(value)
                bounds[name] = dt.datetime.combine(day + dt.timedelta(days=name == "until"), dt.time(), SHANGHAI)
            except ValueError:
                problems.append(f"{name}：日期格式应为 YYYY-MM-DD（收到 {value!r}）")
    entries = await run_in_threadpool(
        lambda: _services(request).audit.entries(
            actor=params.get("actor") or None, action=params.get("action") or None, limit=300, **bounds
        )
    )
    return page(
        "audit.html", context(current, nav="audit", entries=entries, params=dict(params.items()), problems=problems)
    )


@router.get("/keys")
async def keys(request: Request, current: AdminPageDep) -> Response:
    found = await run_in_threadpool(_services(request).keys.listing)
    return page(
        "keys.html",
        context(
            current,
            nav="keys",
            keys=found,
            created=None,
            notice=request.query_params.get("notice"),
            kinds=[*(k.value for k in Kind), CHECKS],
        ),
    )


@router.post("/keys")
async def create_key(request: Request, posted: AdminPostDep) -> Response:
    name, role = posted.text("name"), posted.text("role")
    if not name or len(name) > 64:
        return back("/console/keys", "名称必填，至多 64 个字符")
    if role not in KEY_ROLES:
        return back("/console/keys", "角色须为 source 或 operator")
    chosen = tuple(posted.all("kinds")) or None
    allowed = {*(k.value for k in Kind), CHECKS}
    if chosen and any(k not in allowed for k in chosen):
        return back("/console/keys", "未知的记录类别")
    key, info = await actions.create_key(_services(request), posted.session.person.actor, name, role, chosen)
    found = await run_in_threadpool(_services(request).keys.listing)
    return page(
        "keys.html",
        context(posted.session, nav="keys", keys=found, created=(key, info), notice=None, kinds=sorted(allowed)),
    )


@router.post("/keys/revoke")
async def revoke_key(request: Request, posted: AdminPostDep) -> Response:
    prefix = posted.text("prefix") or ""
    count = await actions.revoke_key(_services(request), posted.session.person.actor, prefix)
    return back("/console/keys", f"已吊销 {count} 个密钥" if count else f"没有前缀为 {prefix} 的有效密钥")


@router.get("/users")
async def users(request: Request, current: AdminPageDep) -> Response:
    everyone = await run_in_threadpool(people(request).everyone)
    return page("users.html", context(current, nav="users", people=everyone, notice=request.query_params.get("notice")))


@router.post("/users")
async def create_user(request: Request, posted: AdminPostDep) -> Response:
    try:
        made = await actions.create_person(
            people(request),
            posted.session.person.actor,
            posted.text("name") or "",
            posted.text("role") or "",
            posted.text("department"),
            str(posted.form.get("password") or ""),
        )
    except (PeopleError, errors.StoreError) as exc:
        return back("/console/users", f"未创建：{exc}")
    return back("/console/users", f"已创建 {made.name}（{made.role.value}）")


@router.post("/users/disable")
async def disable_user(request: Request, posted: AdminPostDep) -> Response:
    name = posted.text("name") or ""
    try:
        ended = await actions.disable_person(people(request), posted.session.person.actor, name)
    except errors.StoreError as exc:
        return back("/console/users", f"未停用：{exc}")
    return back("/console/users", f"已停用 {name}，结束会话 {ended} 个")


@router.post("/users/password")
async def reset_password(request: Request, posted: AdminPostDep) -> Response:
    name = posted.text("name") or ""
    try:
        ended = await actions.reset_password(
            people(request), posted.session.person.actor, name, str(posted.form.get("password") or "")
        )
    except (PeopleError, errors.StoreError) as exc:
        return back("/console/users", f"未重置：{exc}")
    return back("/console/users", f"已重置 {name} 的密码，结束会话 {ended} 个")
