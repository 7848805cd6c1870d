"""The console's templates: one Jinja2 environment (autoescaping), Beijing-time formatting, the 403 page.

Every page is sent with a Content-Security-Policy that allows only the gateway itself: nothing the console shows
can load from elsewhere, and an injected script would not run.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from jinja2.utils import missing
from starlette.responses import HTMLResponse, RedirectResponse

from gateway.console.reads import BREAKER, age_text, local, rate_text
from outbox.states import DeliveryState
from schemas.enums import Kind

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

STATES = {
    DeliveryState.PENDING.value: "待推送",
    DeliveryState.IN_FLIGHT.value: "推送中",
    DeliveryState.AWAITING_RESULT.value: "待回执",
    DeliveryState.RETRY_WAIT.value: "等待重试",
    DeliveryState.PUBLISHED.value: "已公示",
    DeliveryState.DEAD.value: "失败",
    DeliveryState.SUPERSEDED.value: "已被替代",
    DeliveryState.CANCELLED.value: "已放弃",
}
TARGETS = {"national": "信用中国", "provincial": "信用湖南", "municipal": "信用怀化", "portal": "局门户网站"}
ROLES = {"viewer": "查看者", "operator": "操作员", "admin": "管理员"}
FINDINGS = {"missing": "平台缺失", "mismatched": "内容不一致", "extra": "平台多出", "error": "错误"}
RUN_STATUS = {"running": "进行中", "done": "完成", "failed": "失败"}
HEALTH = {
    "breaker": "熔断器",
    "consecutive_failures": "连续失败",
    "down_since": "不可用自",
    "alert": "告警",
    "held_until": "限流至",
}


def kind_label(value: str) -> str:
    try:
        return Kind.from_code(value).label
    except ValueError:
        return value


class NamesRequired(Undefined):
    """A name missing from a page's context fails the page loudly (in tests first); a key missing from a mapping
    the page was given (a form field left empty) reads as nothing, as Jinja2 usually has it."""

    __slots__ = ()

    def _check(self) -> None:
        if self._undefined_obj is missing:
            self._fail_with_undefined_error()

    def __str__(self) -> str:
        self._check()
        return ""

    def __bool__(self) -> bool:
        self._check()
        return False

    def __iter__(self) -> Any:
        self._check()
        return iter(())


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        auto_reload=False,
        undefined=NamesRequired,
    )
    env.filters.update(
        local=local,
        kind=kind_label,
        state=lambda s: STATES.get(s, s),
        target=lambda t: TARGETS.get(t, t),
        role=lambda r: ROLES.get(r, r),
        age=age_text,
        rate=rate_text,
        detail=lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True, default=str),  # escaped by autoescape
        breaker=lambda b: BREAKER.get(b or "", b or "—"),
    )
    env.globals.update(
        FINDINGS=FINDINGS,
        RUN_STATUS=RUN_STATUS,
        HEALTH=HEALTH,
        STATES=STATES,
        TARGETS=TARGETS,
        KINDS=[(k.value, k.label) for k in Kind],
        ROLES=ROLES,
    )
    return env


# What a page may leave out of its context (the rest must be given: the environment is strict).
OPTIONAL = {"me": None, "csrf": "", "nav": "", "notice": None, "replay": None}


def back(path: str, notice: str | None = None, **query: str) -> RedirectResponse:
    """After a form: the page to go back to (303, so the browser GETs it) with its ``query`` (a list's filters)
    and a notice to show there."""
    if notice:
        query["notice"] = notice
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


def page(name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    body = environment().get_template(name).render(**{**OPTIONAL, **context})
    return HTMLResponse(body, status_code=status, headers=secure_headers())


def secure_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def refused(why: str, me: Any = None) -> HTMLResponse:
    return page("refused.html", {"why": why, "me": me}, status=403)
