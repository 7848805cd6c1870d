"""RFC 9457 problem details: every error the API returns, and the handlers that make them.

Each problem type is a URN (``urn:credit-gateway:problem:<slug>``) documented in the README. Domain and store
errors map to specific statuses; anything unexpected is logged with its traceback and answered with a plain 500
that hides internals.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from outbox import errors as store_errors
from schemas.errors import FieldError, from_detail

log = logging.getLogger("gateway.api")
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:credit-gateway:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body

    def response(self) -> Response:
        return Response(orjson.dumps(self.body()), status_code=self.status, media_type=MEDIA_TYPE, headers=self.headers)


def invalid(errors: Sequence[FieldError], detail: str | None = None) -> Problem:
    return Problem(
        422,
        "validation-failed",
        "The record breaks the data standard's rules",
        detail or f"{len(errors)} field(s) need fixing; nothing was stored",
        errors=errors,
    )


_STORE_ERRORS: dict[type[store_errors.StoreError], tuple[int, str, str]] = {
    store_errors.RecordNotFound: (404, "not-found", "No such record"),
    store_errors.AmbiguousRecord: (409, "ambiguous-record", "Several source systems use this source_id"),
    store_errors.StoreBusy: (503, "store-busy", "The database is busy"),
    store_errors.StoreUnavailable: (503, "store-unavailable", "The database is unavailable"),
    store_errors.SchemaNotCurrent: (503, "schema-not-current", "The database schema is out of date"),
    store_errors.StoreError: (500, "store-error", "The database failed"),
}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(store_errors.StoreError)
    async def _store(_: Request, exc: store_errors.StoreError) -> Response:
        status, slug, title = next(v for k, v in _STORE_ERRORS.items() if isinstance(exc, k))
        if status >= 500:
            log.error("store error: %s", exc, extra={"action": "store_error"})
        headers = {"Retry-After": "1"} if status == 503 else None
        return Problem(status, slug, title, str(exc), headers=headers).response()

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> Response:
        found = [from_detail(d) for d in exc.errors()]
        return invalid(found, "the request's parameters are invalid").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return Problem(
            exc.status_code, slug, str(exc.detail), str(exc.detail), headers=dict(exc.headers or {})
        ).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, extra={"action": "crash"})
        return Problem(500, "internal-error", "Internal error", "the gateway failed; the error was logged").response()
