"""Report mail over HTTP (operator keys): what was sent to whom, and what is still failing.

``GET /api/v1/report-mails`` lists each mail (newest first) with its state (``queued``, ``sending``,
``retry_wait``, ``sent``, ``given_up``), attempts, last error and next try; ``GET /api/v1/report-schedules`` the
schedules and their recipients as the gateway holds them (seeded from ``REPORT_MAIL__SCHEDULES``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.operations import OperatorDep, _json

router = APIRouter(prefix="/api/v1", tags=["reports"])
MailState = Literal["queued", "sending", "retry_wait", "sent", "given_up"]


@router.get(
    "/report-mails",
    summary="Report mail sent and to be sent, newest first, with errors and next try",
    response_model=docs.Items,
    responses=docs.problems(401, 403, 422, 503),
)
async def report_mails(
    request: Request,
    _: OperatorDep,
    state: MailState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    mailer = request.app.state.services.mailer
    return _json({"items": await run_in_threadpool(lambda: mailer.mails(state=state, limit=limit))})


@router.get(
    "/report-schedules",
    summary="Scheduled reports and their recipients",
    response_model=docs.Items,
    responses=docs.problems(401, 403, 503),
)
async def report_schedules(request: Request, _: OperatorDep) -> Response:
    return _json({"items": await run_in_threadpool(request.app.state.services.mailer.schedules)})
