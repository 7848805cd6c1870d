"""From request bytes to validated records: size limit, JSON, the domain's rules, duplicates within a batch.

Everything here runs before the store is touched, so a refused request writes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from gateway.api.problems import Problem
from gateway.services.records import Incoming
from schemas.enums import Kind
from schemas.errors import FieldError, under
from schemas.validation import Canonical, validate

JSON_TYPES = ("application/json", "application/problem+json")


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON values, refusing oversized bodies before reading them in full.

    Callers check the key first (a body is never read for a caller without one). JSON is UTF-8 (RFC 8259), so a
    missing Content-Type or another charset is refused rather than guessed at.
    """
    check_media_type(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large(limit)
    except ClientDisconnect:  # nobody is left to answer; not a crash of ours
        raise Problem(400, "bad-request", "The client went away", "the connection closed mid-body") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            "The body is not valid JSON",
            str(exc),
            errors=[FieldError("", "malformed_json", str(exc))],
        ) from None


def check_media_type(request: Request) -> None:
    """415 unless the body is declared JSON (``application/json`` or ``…+json``) in UTF-8."""
    raw = request.headers.get("content-type")
    if raw is None:
        raise _unsupported("the request has no Content-Type; send Content-Type: application/json")
    media, _, params = raw.partition(";")
    media = media.strip().lower()
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise _unsupported(f"Content-Type must be application/json, got {media!r}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise _unsupported(f"JSON is UTF-8; charset {charset!r} is not accepted")


def _unsupported(detail: str) -> Problem:
    return Problem(415, "unsupported-media-type", "Send JSON", detail)


def too_large(limit: int) -> Problem:
    return Problem(
        413, "body-too-large", "The body is too large", f"request bodies are limited to {limit} bytes; split the batch"
    )


@dataclass(slots=True)
class Checked:
    """A batch after validation: what may be stored, and what was refused with which reasons."""

    accepted: list[tuple[int, Incoming]] = field(default_factory=list)
    refused: dict[int, list[FieldError]] = field(default_factory=dict)
    # Repeats of an earlier item with the same content: answered with that item's result.
    echoes: dict[int, int] = field(default_factory=dict)


def check_one(kind: Kind, data: Any, today: dt.date) -> Incoming | list[FieldError]:
    result = validate(kind, data, today=today)
    if isinstance(result, Canonical):
        return Incoming(result, result.storable(data))
    return result


def check_batch(kind: Kind, body: Any, today: dt.date, max_items: int) -> Checked:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise Problem(
            422,
            "validation-failed",
            'A batch is {"items": [record, ...]}',
            "the body must be an object with an 'items' list",
            errors=[FieldError("items", "required", "must be a list of records")],
        )
    unknown = sorted(k for k in body if k != "items")
    if unknown:  # {"items": [...], "atomic": true} must not quietly store a non-atomic batch
        raise Problem(
            422,
            "validation-failed",
            'A batch is {"items": [record, ...]}',
            f"unknown field(s) in the batch: {', '.join(unknown)} (atomic is a query parameter)",
            errors=[FieldError(k, "unknown_field", "is not a field of a batch") for k in unknown],
        )
    items: list[Any] = body["items"]
    if len(items) > max_items:
        raise Problem(
            413,
            "batch-too-large",
            "Too many items",
            f"a batch holds at most {max_items} items, got {len(items)}",
            errors=[FieldError("items", "too_many_items", f"at most {max_items} items")],
        )
    checked = Checked()
    first: dict[str, tuple[int, str]] = {}  # source_id -> (index, content hash) of its first valid occurrence
    for index, data in enumerate(items):
        result = check_one(kind, data, today)
        if isinstance(result, list):
            checked.refused[index] = under(f"items[{index}]", result)
            continue
        sid, digest = result.canonical.source_id, result.canonical.content_hash
        if sid not in first:
            first[sid] = (index, digest)
            checked.accepted.append((index, result))
        elif first[sid][1] == digest:
            checked.echoes[index] = first[sid][0]
        else:
            checked.refused[index] = [
                FieldError(
                    f"items[{index}].source_id",
                    "duplicate_source_id",
                    f"source_id {sid!r} already appears at items[{first[sid][0]}] with other content; "
                    "send one version per batch",
                )
            ]
    return checked
