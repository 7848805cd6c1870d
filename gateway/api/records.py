"""The ingest half of the contract: post records (one or a batch), withdraw them, and look at them."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.api import docs
from gateway.api.auth import Principal, authenticate, forbid
from gateway.api.bodies import BodySlot, body_doc, json_body
from gateway.api.problems import Problem, invalid
from gateway.clock import local_date
from gateway.intake import Checked, check_batch, check_one, read_json
from gateway.services.bundle import Services
from gateway.services.errors import AtomicBatchRefused
from gateway.services.records import Incoming, Stored
from schemas.enums import Kind, WithdrawReason
from schemas.errors import FieldError
from schemas.records import MODELS

router = APIRouter(prefix="/api/v1", tags=["records"])
PrincipalDep = Annotated[Principal, Depends(authenticate)]
SourceSystem = Annotated[
    docs.TextParam | None, Query(description="operators: which source system's record (when several use the id)")
]

KIND_HELP = (
    "licences (行政许可), penalties (行政处罚), commitments (信用承诺), list-changes (红黑名单变更), "
    "cases (典型案例), news (工作动态)"
)


def _kind(value: str) -> Kind:
    try:
        return Kind.from_code(value)
    except ValueError:
        raise Problem(
            404, "unknown-kind", "No such record kind", f"{value!r} is not a record kind; use one of: {KIND_HELP}"
        ) from None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _withdrawn_error(field: str) -> FieldError:
    return FieldError(
        field, "record_withdrawn", "this record was withdrawn and takes no new content; ask the credit office to review"
    )


def _single_body(stored: Stored, incoming: Incoming) -> dict[str, Any]:
    return {
        "id": stored.record_id,
        "source_id": stored.source_id,
        "version": stored.version,
        "status": stored.status,
        "deliveries": stored.deliveries,
        **_removed(incoming),
    }


def _removed(incoming: Incoming) -> dict[str, Any]:
    """Articles: what cleaning took out of content_html, so the source can see what the portal will not show."""
    removed = incoming.canonical.removed
    return {"removed": [r.as_dict() for r in removed]} if removed else {}


@router.post(
    "/{kind}",
    summary="Post one record (new, correction, or an identical repeat)",
    status_code=201,
    response_model=docs.Stored,
    responses={
        201: {"description": "stored as a new record or a new version"},
        200: {
            "description": "identical to the current version: nothing changed",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Stored"}}},
        },
        **docs.problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in MODELS.values()]}
                }
            },
        }
    },
)
async def post_record(kind: docs.KindName, request: Request, principal: PrincipalDep, _: BodySlot) -> Response:
    k = _kind(kind)
    if not principal.may_send(k):
        raise forbid(principal, f"send {k.value}")
    services: Services = request.app.state.services
    data = await read_json(request, services.settings.max_body_bytes)
    incoming = check_one(k, data, local_date(services.clock))
    if isinstance(incoming, list):
        await run_in_threadpool(services.records.refused, principal.actor, k, incoming)
        raise invalid(incoming)
    [stored] = await run_in_threadpool(services.records.ingest, principal.actor, k, [incoming], False)
    if stored.status == "withdrawn":
        raise Problem(
            409,
            "record-withdrawn",
            "The record was withdrawn",
            f"{k.value} {stored.source_id!r} was withdrawn; it takes no new content",
            errors=[_withdrawn_error("source_id")],
        )
    return _json(_single_body(stored, incoming), 201 if stored.status in ("created", "updated") else 200)


@router.post(
    "/{kind}/batch",
    summary="Post up to 1000 records; per-item results (atomic=true: all or none)",
    response_model=docs.BatchResults,
    responses=docs.problems(400, 401, 403, 404, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["items"],
                        "additionalProperties": False,
                        "properties": {
                            "items": {
                                "type": "array",
                                "maxItems": 1000,
                                "description": "records; an item that is not one is reported rejected, the rest stored",
                                "items": {},
                            }
                        },
                    }
                }
            },
        }
    },
)
async def post_batch(
    kind: docs.KindName,
    request: Request,
    principal: PrincipalDep,
    _: BodySlot,
    atomic: Annotated[bool, Query(description="store all items or none (422 if any is refused)")] = False,
) -> Response:
    k = _kind(kind)
    if not principal.may_send(k):
        raise forbid(principal, f"send {k.value}")
    services: Services = request.app.state.services
    body = await read_json(request, services.settings.max_body_bytes)
    checked = await run_in_threadpool(
        check_batch, k, body, local_date(services.clock), services.settings.max_batch_items
    )
    if checked.refused:
        refused = [e for i in sorted(checked.refused) for e in checked.refused[i]]
        await run_in_threadpool(services.records.refused, principal.actor, k, refused, len(checked.refused))
    if atomic and checked.refused:
        raise invalid(refused, f"{len(checked.refused)} item(s) refused; atomic batch: nothing was stored")
    try:
        stored = await run_in_threadpool(
            services.records.ingest, principal.actor, k, [i for _, i in checked.accepted], atomic
        )
    except AtomicBatchRefused as exc:
        index_of = {inc.canonical.source_id: idx for idx, inc in checked.accepted}
        raise invalid(
            [
                _withdrawn_error(f"items[{index_of[s.source_id]}].source_id")
                for s in exc.results
                if s.status == "withdrawn"
            ],
            "an item names a withdrawn record; atomic batch: nothing was stored",
        ) from None
    return _json({"results": _batch_results(checked, stored)})


def _batch_results(checked: Checked, stored: list[Stored]) -> list[dict[str, Any]]:
    by_index: dict[int, dict[str, Any]] = {}
    for (index, incoming), s in zip(checked.accepted, stored, strict=True):
        if s.status == "withdrawn":
            by_index[index] = {
                "index": index,
                "status": "rejected",
                "errors": [_withdrawn_error(f"items[{index}].source_id").as_dict()],
            }
        else:
            by_index[index] = {
                "index": index,
                "status": s.status,
                "id": s.record_id,
                "version": s.version,
                **_removed(incoming),
            }
    for index, errors in checked.refused.items():
        by_index[index] = {"index": index, "status": "rejected", "errors": [e.as_dict() for e in errors]}
    for index, original in checked.echoes.items():
        echo = dict(by_index[original], index=index)
        if echo["status"] != "rejected":
            echo["status"] = "unchanged"
        by_index[index] = echo
    return [by_index[i] for i in sorted(by_index)]


class WithdrawBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: WithdrawReason = Field(description="revoked | credit_repair | period_ended | other")
    note: Annotated[str, StringConstraints(max_length=1000, pattern=docs.NO_NUL)] | None = None


async def may_withdraw(request: Request, principal: PrincipalDep) -> Principal:
    k = _kind(request.path_params["kind"])
    if not (principal.may_send(k) or principal.role == "operator"):
        raise forbid(principal, f"withdraw {k.value}")
    return principal


@router.post(
    "/{kind}/{source_id}/withdraw",
    summary="Withdraw a record from every target that holds it",
    response_model=docs.Withdrawn,
    responses=docs.problems(400, 401, 403, 404, 409, 413, 415, 422, 503),
    openapi_extra=body_doc(WithdrawBody),
)
async def withdraw(
    kind: docs.KindName,
    source_id: docs.SourceId,
    request: Request,
    principal: Annotated[Principal, Depends(may_withdraw)],
    body: Annotated[WithdrawBody, Depends(json_body(WithdrawBody, may_withdraw))],
    source_system: SourceSystem = None,
) -> Response:
    k = _kind(kind)
    services: Services = request.app.state.services
    system = principal.name if principal.role == "source" else source_system
    result = await run_in_threadpool(
        partial(services.records.withdraw, reason=body.reason, note=body.note, source_system=system),
        principal.actor,
        k,
        source_id,
    )
    return _json(
        {
            "id": result.record_id,
            "source_id": source_id,
            "version": result.version,
            "status": "already_withdrawn" if result.already else "withdrawn",
            "deliveries": result.deliveries,
        }
    )


@router.get(
    "/{kind}/{source_id}",
    summary="A record: current content, versions, deliveries and attempts",
    response_model=docs.RecordView,
    responses=docs.problems(401, 403, 404, 409, 422, 503),
)
async def get_record(
    kind: docs.KindName,
    source_id: docs.SourceId,
    request: Request,
    principal: PrincipalDep,
    source_system: SourceSystem = None,
) -> Response:
    k = _kind(kind)
    if not principal.may_read(k):
        raise forbid(principal, f"read {k.value}")
    services: Services = request.app.state.services
    system = principal.name if principal.role == "source" else source_system
    return _json(await run_in_threadpool(services.records.view, k, source_id, system))
