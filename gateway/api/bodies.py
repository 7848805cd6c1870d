"""Request bodies: read only once the key is checked, under the size limit, and only so many bytes at once.

FastAPI reads and parses a declared body parameter before it runs any dependency, so routes that took
``body: Model`` read a 100 MB body from a caller without a key before answering 401. No route declares a body
parameter: the dependency ``json_body`` (or the handler) reads the body after the caller's key and role are
checked; the OpenAPI document describes the body through ``body_doc``.

Bodies being read and processed at once are bounded by ``max_body_bytes_in_flight`` (per process): a parsed
batch costs several times its size in Python objects, so 16 concurrent 8 MB batches took the process from 183
to 552 MB. Beyond the budget a request is answered ``503 server-busy`` with ``Retry-After`` before its body is
read; a request is always admitted when nothing else is in flight, so any body under the size limit can pass.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the dependency's annotations at runtime, and those
# of ``json_body``'s inner function name the closure's ``guard``, which a string annotation could not resolve.
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from gateway import memory
from gateway.api.auth import Principal, authenticate
from gateway.api.problems import BODY_TITLE, Problem, invalid, param_errors
from gateway.intake import read_json, too_large
from gateway.services.bundle import Services
from schemas.errors import from_pydantic

M = TypeVar("M", bound=BaseModel)
# After a body this large is done with and nothing else is in flight, free heap pages go back to the OS.
TRIM_AFTER_BYTES = 1024 * 1024


class BodyBudget:
    """Bytes of request bodies admitted and not yet done with, in this process (used on the event loop only)."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0
        self.count = 0

    def try_reserve(self, size: int) -> bool:
        if self.count and self.used + size > self.limit:
            return False
        self.used += size
        self.count += 1
        return True

    def release(self, size: int) -> bool:
        """Give ``size`` back; True when nothing is in flight any more."""
        self.used -= size
        self.count -= 1
        return self.count == 0


def has_body(request: Request) -> bool:
    declared = request.headers.get("content-length")
    if declared is not None:
        return declared.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _expected_size(request: Request, limit: int) -> int:
    """What the body will cost at most: its declared length, or the limit when it comes chunked."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit():
        if int(declared) > limit:
            raise too_large(limit)
        return int(declared)
    return limit


async def body_slot(request: Request, _: Annotated[Principal, Depends(authenticate)]) -> AsyncIterator[None]:
    """Hold a share of the in-flight budget while this request's body is read and processed."""
    if not has_body(request):
        yield
        return
    services: Services = request.app.state.services
    size = _expected_size(request, services.settings.max_body_bytes)
    budget: BodyBudget = request.app.state.body_budget
    if not budget.try_reserve(size):
        services.metrics.busy_refusals.inc()
        raise Problem(
            503,
            "server-busy",
            "The gateway is busy with other large requests",
            f"{budget.count} request bodies ({budget.used} bytes) are being processed; "
            f"the limit is {budget.limit} bytes at once: retry after the time in Retry-After",
            headers={"Retry-After": "1"},
        )
    try:
        yield
    finally:
        if budget.release(size) and size >= TRIM_AFTER_BYTES:
            await run_in_threadpool(memory.give_back)


BodySlot = Annotated[None, Depends(body_slot)]


def json_body(
    model: type[M], guard: Callable[..., Any] = authenticate, *, optional: bool = False
) -> Callable[..., Any]:
    """A dependency giving the body as ``model``, read after ``guard`` (the key and role check) passed."""

    async def dependency(request: Request, _: Annotated[Principal, Depends(guard)], __: BodySlot) -> M | None:
        if optional and not has_body(request):
            return None
        services: Services = request.app.state.services
        data = await read_json(request, services.settings.max_body_bytes)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise invalid(
                param_errors(from_pydantic(exc)), "the request body is invalid; nothing was changed", title=BODY_TITLE
            ) from None

    return dependency


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` describing a body that ``json_body`` reads (FastAPI cannot see it)."""
    from gateway.api import docs

    docs.BODY_MODELS.add(model)
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
        }
    }
