"""The national platform's subject query (PROTOCOLS.md "national: subject query") and its admin seeding.

The platform answers from everything it holds about a subject from every reporting unit: what other units
reported (seeded through ``POST /_admin/national/subjects``) beside what this bureau sent it (public ``CF``
penalties naming the subject in ``CF_XDR_SHXYM``/``CF_XDR_ZJHM``, and ``MD`` list entries naming it in
``MD_ZTDM``, minus those a later 移出 took off the same list). Written from the protocol, not from the adapters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from adapters.sandbox.routing import Router
from adapters.sandbox.state import SandboxState

# 处罚类别 the platform counts as 严重失信 when a unit did not say.
SERIOUS_LABELS = ("吊销许可证件", "责令停产停业", "责令关闭", "限制从业", "行政拘留")
Authorise = Callable[[Request, bytes], Awaitable[Response | None]]


class Subjects:
    """What other units reported, by subject code (the last seeding of a code wins)."""

    def __init__(self) -> None:
        self.seeded: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def seed(self, doc: dict[str, Any]) -> dict[str, Any]:
        code = doc["code"]
        if not isinstance(code, str) or not code.strip():
            raise ValueError("code is required")
        lists, penalties = doc.get("lists") or [], doc.get("penalties") or []
        if not isinstance(lists, list) or not isinstance(penalties, list):
            raise ValueError("lists and penalties are lists")
        key = code.strip().upper()
        entry = {"code": key, "name": doc.get("name"), "lists": lists, "penalties": penalties}
        with self.lock:
            self.seeded[key] = entry
        return entry

    def answer(self, state: SandboxState, code: str, queried_at: str) -> dict[str, Any]:
        with self.lock:
            seeded = self.seeded.get(code, {})
        received_lists, received_penalties, name = received(state, code)
        return {
            "code": code,
            "name": seeded.get("name") or name,
            "lists": [*seeded.get("lists", []), *received_lists],
            "penalties": [*seeded.get("penalties", []), *received_penalties],
            "queried_at": queried_at,
        }


def received(state: SandboxState, code: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The subject's public penalties and list entries among what the platform received."""
    with state.lock:
        rows = state.db.execute(
            "SELECT type, data FROM holding WHERE target = 'national' AND status = 'public' AND ("
            "(type = 'CF' AND (json_extract(data, '$.CF_XDR_SHXYM') = ?1 OR json_extract(data, '$.CF_XDR_ZJHM') = ?1))"
            " OR (type = 'MD' AND json_extract(data, '$.MD_ZTDM') = ?1))",
            (code,),
        ).fetchall()
    docs = [(kind, orjson.loads(data)) for kind, data in rows]
    name = next((d.get("CF_XDR_MC") or d.get("MD_ZTMC") for _, d in docs), None)
    penalties = [
        {
            "decision_number": d.get("CF_WSH"),
            "unit": d.get("CF_CFJG"),
            "decision_date": d.get("CF_JDRQ"),
            "publish_until": d.get("CF_GSJZQ") or None,
            "categories": [c for c in str(d.get("CF_CFLB") or "").split(";") if c],
            "serious": any(label in str(d.get("CF_CFLB") or "") for label in SERIOUS_LABELS),
        }
        for kind, d in docs
        if kind == "CF"
    ]
    removals = [d for kind, d in docs if kind == "MD" and d.get("MD_CZ") == "移出"]
    lists = [
        {
            "list": d.get("MD_LB"),
            "list_name": d.get("MD_MC"),
            "unit": d.get("MD_RDBM"),
            "since": d.get("MD_RQ"),
            "until": d.get("MD_YXQ") or None,
        }
        for kind, d in docs
        if kind == "MD"
        and d.get("MD_CZ") == "列入"
        and not any(
            r.get("MD_LB") == d.get("MD_LB")
            and r.get("MD_MC") == d.get("MD_MC")
            and str(r.get("MD_RQ") or "") >= str(d.get("MD_RQ") or "")
            for r in removals
        )
    ]
    return lists, penalties, name


def register(router: Router, sb: Any, subjects: Subjects, authorised: Authorise) -> None:
    """The signed query on the national router; ``sb`` is the sandbox, whose national faults apply here too."""

    @router.get("/api/v1/subjects/{code}")
    async def subject(code: str, request: Request) -> Response:
        refused = await authorised(request, b"") or await sb.before("national")
        if refused:
            return refused
        state: SandboxState = sb.state
        queried_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.now()))
        data = subjects.answer(state, code.strip().upper(), queried_at)
        reply = Response(orjson.dumps({"code": "0", "message": "ok", "data": data}), media_type="application/json")
        response: Response = await sb.after("national", reply)
        return response


def admin_router(subjects: Subjects) -> Router:
    router = Router(prefix="/_admin/national")

    @router.post("/subjects")
    async def seed(request: Request) -> Response:
        try:
            entry = subjects.seed(orjson.loads(await request.body()))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            return Response(orjson.dumps({"error": f"malformed subject: {exc}"}), 400, media_type="application/json")
        return Response(orjson.dumps(entry), 201, media_type="application/json")

    return router
