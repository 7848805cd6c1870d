"""Who is at the console: the session cookie, the CSRF check on every form, and the role an action needs.

The cookie holds the session token only (HttpOnly, ``SameSite=Strict``, ``Secure`` over HTTPS); ``gateway.people``
keeps the digest, the idle limit and the CSRF derivation. A page without a session answers 303 to the sign-in
form; a form without its CSRF token, or an action above the person's role, answers 403 and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from gateway.people import People, Session

COOKIE = "cg_session"
CSRF_FIELD = "csrf"


class SignInNeeded(Exception):
    """No open session: the page answers 303 to ``/console/login``."""


class Refused(Exception):
    """403: no valid CSRF token, or the person's role does not allow the action; ``why`` is shown."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def people(request: Request) -> People:
    return request.app.state.people  # type: ignore[no-any-return]


def set_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console")


async def session(request: Request) -> Session:
    """The open session of the request, or 303 to the sign-in form."""
    token = request.cookies.get(COOKIE, "")
    found = await run_in_threadpool(people(request).session, token) if token else None
    if found is None:
        raise SignInNeeded()
    return found


SessionDep = Annotated[Session, Depends(session)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A form that passed the CSRF check, with the session that posted it."""

    session: Session
    form: FormData

    def text(self, name: str) -> str | None:
        value = self.form.get(name)
        if not isinstance(value, str) or not value.strip():
            return None
        return value.strip()

    def all(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str)]


def cross_site(request: Request) -> bool:
    """A browser names the page a form came from (``Origin``); one from another site is refused before anything
    else, the sign-in form included (a forged sign-in would put someone in the attacker's session)."""
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


async def _posted(request: Request, current: Session) -> Posted:
    if cross_site(request):
        raise Refused("表单来自其他网站，已拒绝")
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not People.csrf_ok(current, token if isinstance(token, str) else None):
        raise Refused("表单缺少有效的 CSRF 令牌，请刷新页面后重试")
    return Posted(current, form)


async def posted(request: Request, current: SessionDep) -> Posted:
    """Any form (sign-out too): the CSRF token must match the session's."""
    return await _posted(request, current)


async def acting(request: Request, current: SessionDep) -> Posted:
    """An action on records, deliveries, targets or reports: operators and admins."""
    form = await _posted(request, current)
    if not current.person.role.may_act:
        raise Refused(f"{current.person.name}（{current.person.role.value}）只能查看，不能执行操作")
    return form


async def administering(request: Request, current: SessionDep) -> Posted:
    """People and API keys: admins only."""
    form = await _posted(request, current)
    if not current.person.role.may_administer:
        raise Refused("只有管理员可以管理用户和 API 密钥")
    return form


async def admin_page(current: SessionDep) -> Session:
    if not current.person.role.may_administer:
        raise Refused("只有管理员可以查看此页")
    return current


PostedDep = Annotated[Posted, Depends(posted)]
ActingDep = Annotated[Posted, Depends(acting)]
AdminPostDep = Annotated[Posted, Depends(administering)]
AdminPageDep = Annotated[Session, Depends(admin_page)]


def context(current: Session, **values: Any) -> dict[str, Any]:
    """What every signed-in page's template needs besides its own values."""
    return {"me": current.person, "csrf": current.csrf_token, **values}
