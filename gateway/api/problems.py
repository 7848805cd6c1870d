"""RFC 9457 problem details: every error the API returns, and the handlers that make them.

Each problem type is a URN (``urn:credit-gateway:problem:<slug>``) documented in the README. Domain and store
errors map to specific statuses; anything unexpected is logged with its traceback and answered with a plain 500
that hides internals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gateway.services import errors as store_errors
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


RECORD_TITLE = "The record breaks the data standard's rules"
BODY_TITLE = "The request body is invalid"
PARAMS_TITLE = "The request's parameters are invalid"


def invalid(errors: Sequence[FieldError], detail: str | None = None, *, title: str = RECORD_TITLE) -> Problem:
    return Problem(
        422,
        "validation-failed",
        title,
        detail or f"{len(errors)} field(s) need fixing; nothing was stored",
        errors=errors,
    )


# pydantic's error types for request parameters and operator bodies, as the codes the README lists
_PARAM_CODES = {
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "int_parsing": "wrong_type",
    "int_type": "wrong_type",
    "int_from_float": "wrong_type",
    "bool_parsing": "wrong_type",
    "bool_type": "wrong_type",
    "date_parsing": "invalid_date",
    "date_from_datetime_parsing": "invalid_date",
    "date_from_datetime_inexact": "invalid_date",
    "date_type": "invalid_date",
    "string_pattern_mismatch": "invalid_characters",
    "literal_error": "unknown_value",
    "enum": "unknown_value",
}


def param_errors(errors: Sequence[FieldError]) -> list[FieldError]:
    """Field errors with the README's codes; parameters named as sent (``period``, not ``query.period``)."""
    found = []
    for e in errors:
        field = e.field
        for prefix in ("query.", "path.", "header.", "body."):
            if field.startswith(prefix):
                field = field[len(prefix) :]
        found.append(FieldError(field, _PARAM_CODES.get(e.code, e.code), e.message))
    return found


_STORE_ERRORS: dict[type[store_errors.StoreError], tuple[int, str, str]] = {
    store_errors.RecordNotFound: (404, "not-found", "No such record"),
    store_errors.AmbiguousRecord: (409, "ambiguous-record", "Several source systems use this source_id"),
    store_errors.StoreBusy: (503, "store-busy", "The database is busy"),
    store_errors.StoreUnavailable: (503, "store-unavailable", "The database is unavailable"),
    store_errors.SchemaNotCurrent: (503, "schema-not-current", "The database schema is out of date"),
    store_errors.StoreError: (500, "store-error", "The database failed"),
}


_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    414: "uri-too-long",
    415: "unsupported-media-type",
}


def allowed_methods(request: Request) -> list[str]:
    """Every method the documented paths answer on this path (Starlette names only the first route's).

    Read from the OpenAPI document, so ``/api/v1/targets`` is not taken for ``/api/v1/{kind}`` with an unknown kind.
    """
    from schemas.enums import Kind

    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"\{(\w+)\}", template)
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        found = re.fullmatch(pattern, request.url.path)
        if found is None or found.groupdict().get("kind", "licences") not in Kind._value2member_map_:
            continue
        methods |= {m.upper() for m in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(store_errors.StoreError)
    async def _store(_: Request, exc: store_errors.StoreError) -> Response:
        status, slug, title = next(v for k, v in _STORE_ERRORS.items() if isinstance(exc, k))
        detail = str(exc)
        if status >= 500:  # the driver's message (SQL text, say) goes to the log, never to the caller
            log.error("store error: %s", exc, extra={"action": "store_error"})
            detail = (type(exc).__doc__ or title).strip().splitlines()[0]
        headers = {"Retry-After": "1"} if status == 503 else None
        return Problem(status, slug, title, detail, headers=headers).response()

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> Response:
        found = param_errors([from_detail(d) for d in exc.errors()])
        fields = ", ".join(sorted({e.field for e in found}))
        return invalid(found, f"invalid parameter(s): {fields}", title=PARAMS_TITLE).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}"
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        return Problem(exc.status_code, slug, str(exc.detail), detail, headers=headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, extra={"action": "crash"})
        return Problem(500, "internal-error", "Internal error", "the gateway failed; the error was logged").response()
