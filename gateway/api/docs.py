"""What the OpenAPI document says the API answers: response models, the problem document, shared parameter types.

Handlers build their JSON with orjson for speed; these models are what the routes declare (``response_model``)
so ``/openapi.json`` describes every answer, and the schemathesis suite checks each real answer against them.
Error answers are documented as ``application/problem+json`` with the ``Problem`` schema for the statuses each
route can give.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints
from pydantic_core import PydanticCustomError

from schemas.periods import EARLIEST_DAY, LATEST_DAY

MAX_ID = 2**63 - 1  # the databases' BIGINT: larger ids cannot exist, and would overflow the driver
MAX_OFFSET = 2**31 - 1
TARGET_NAMES = ["national", "provincial", "municipal", "portal"]
KIND_NAMES = ["licences", "penalties", "commitments", "list-changes", "cases", "news"]
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _json_integer(value: object) -> object:
    """A JSON integer (``3`` or ``3.0``, as JSON Schema counts them), not ``"3"`` nor ``true`` (pydantic's lax mode)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("wrong_type", "must be a whole number")
    return value


RowId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_json_integer)]
Flag = Annotated[bool, Strict()]  # a JSON boolean: not "yes", not 1
Text = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
TextParam = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
YEARS = r"(19(49|[5-9][0-9])|20[0-9]{2})"  # 1949 to 2099: what reports and replays may ask about
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    """Only a ``YYYY-MM-DD`` string (pydantic would also take a timestamp or a midnight datetime)."""
    if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
        raise PydanticCustomError("invalid_date", "must be a date written YYYY-MM-DD")
    return value


Day = Annotated[
    dt.date,
    Field(ge=EARLIEST_DAY, le=LATEST_DAY, json_schema_extra={"pattern": f"^{YEARS}-[0-9]{{2}}-[0-9]{{2}}$"}),
    BeforeValidator(_iso_day),
]
TargetName = Annotated[str, Path(description="a target", json_schema_extra={"enum": TARGET_NAMES})]
KindName = Annotated[
    str,
    Path(
        description="licences, penalties, commitments, list-changes, cases or news",
        json_schema_extra={"enum": KIND_NAMES},
    ),
]
SourceId = Annotated[str, Path(description="the source system's id of the record", max_length=200, pattern=NO_NUL)]

# a month, quarter, year or day of the years reports cover (calendar validity is checked on parsing)
PERIOD_PATTERN = f"^{YEARS}" + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?|-[Qq][1-4])?$"
# Documented only: the handler parses the period itself, so a bad one gets a message naming the accepted forms.
PERIOD_HELP = "2026-10 (month), 2026-Q4 (quarter), 2026 (year) or 2026-10-05 (day); years 1949 to 2099"

BODY_MODELS: set[type[BaseModel]] = set()  # request bodies read by hand (gateway/api/bodies.py), for components


class FieldError(BaseModel):
    field: str = Field(description="JSON path of the bad value (counterpart.uscc, items[3].decision_date)")
    code: str = Field(description="stable machine code (required, invalid_uscc, out_of_range, ...)")
    message: str = Field(description="the rule, in plain words")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="urn:credit-gateway:problem:<slug>", pattern="^urn:credit-gateway:problem:")
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


_WHY = {
    400: "malformed JSON (`malformed-json`) or a malformed request (`bad-request`)",
    401: "no key, or an unknown or revoked one (`unauthorised`)",
    403: "the key's role or kinds do not allow this (`forbidden`)",
    404: "no such record, kind, target, report or run",
    409: "the request conflicts with the record's state",
    413: "the body is over MAX_BODY_BYTES or the batch over MAX_BATCH_ITEMS",
    415: "the body is not JSON in UTF-8 (`unsupported-media-type`)",
    422: "a field or parameter breaks a rule (`validation-failed`; each error names the field)",
    503: "the database is busy or down, or too many large bodies are in flight (with Retry-After)",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting these error statuses as problem documents."""
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _WHY[status], "content": content}
        if status == 503:
            entry["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        found[status] = entry
    return found


# -- records --------------------------------------------------------------------------------------------


class DeliveryState(BaseModel):
    target: str
    state: str


class Removed(BaseModel):
    """Articles: one thing cleaning took out of ``content_html`` (an element, attribute, URL or comment)."""

    field: str
    code: Literal["element_removed", "attribute_removed", "url_removed", "comment_removed"]
    name: str = Field(description="the element, the attribute, the URL's scheme (javascript:, data:) or comment")
    line: int
    column: int
    message: str


class Stored(BaseModel):
    """The answer to a posted record."""

    id: int
    source_id: str
    version: int
    status: Literal["created", "updated", "unchanged"]
    deliveries: list[DeliveryState]
    removed: list[Removed] | None = Field(default=None, description="articles: what cleaning removed, if anything")


class BatchItem(BaseModel):
    index: int
    status: Literal["created", "updated", "unchanged", "rejected"]
    id: int | None = None
    version: int | None = None
    errors: list[FieldError] | None = None
    removed: list[Removed] | None = None


class BatchResults(BaseModel):
    results: list[BatchItem]


class Withdrawn(BaseModel):
    id: int
    source_id: str
    version: int
    status: Literal["withdrawn", "already_withdrawn"]
    deliveries: list[DeliveryState]


class Attempt(BaseModel):
    at: str
    outcome: str
    code: str | None
    message: str | None
    duration_ms: int | None = None


class DeliveryView(BaseModel):
    target: str
    version: int
    operation: Literal["publish", "withdraw"]
    state: str
    idempotency_key: str
    due_date: dt.date | None
    published_at: str | None
    last_code: str | None
    last_message: str | None
    attempts: list[Attempt]
    standing: str | None = Field(default=None, description="current version's publish deliveries: how it stands")
    due_note: str | None = Field(default=None, description="why there is no due date")


class VersionView(BaseModel):
    version: int
    content_hash: str
    received_at: str


class WithdrawalView(BaseModel):
    reason: str
    note: str | None
    at: str


class RecordView(BaseModel):
    id: int
    source_id: str
    source_system: str
    kind: str
    version: int
    decided_on: dt.date
    record: dict[str, Any] = Field(description="the current version's canonical content")
    versions: list[VersionView]
    withdrawn: WithdrawalView | None
    deliveries: list[DeliveryView]


# -- operations -----------------------------------------------------------------------------------------


class LastFailure(BaseModel):
    at: str
    code: str | None = Field(description="HTTP status or transport code (timeout, connect, ...)")
    message: str | None


class TargetHealthView(BaseModel):
    """Shared by every process through the database: the same whichever process sends (README "Target health")."""

    breaker: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_at: str | None
    down_since: str | None
    alert: bool = Field(description="down longer than DELIVERY__ALERT_AFTER_SECONDS")
    held_until: str | None = Field(description="the target's Retry-After being honoured; null when not throttled")
    last_success_at: str | None
    last_failure: LastFailure | None
    updated_at: str | None
    paused: bool


class TargetView(BaseModel):
    target: str
    enabled: bool
    kinds: list[str]
    base_url: str
    paused: dict[str, Any] | None
    deliveries: dict[str, int]
    health: TargetHealthView


class Targets(BaseModel):
    targets: list[TargetView]


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    target: str
    version: int
    operation: str
    kind: str
    source_id: str


class DeadLetters(BaseModel):
    total: int
    items: list[DeadLetter]


class Requeued(BaseModel):
    requeued: int


class Cancelled(BaseModel):
    cancelled: int


class Paused(BaseModel):
    target: str
    paused: bool


class ReplayPlan(BaseModel):
    target: str
    dry_run: bool
    count: int
    items: list[dict[str, Any]]


# -- reports --------------------------------------------------------------------------------------------


class Open(BaseModel):
    """A document whose full shape the README describes; the fields named here are always present."""

    model_config = ConfigDict(extra="allow")


class Report(Open):
    summary: dict[str, Any]


class StoredReport(BaseModel):
    id: int
    period: str
    summary: dict[str, Any]


class Items(BaseModel):
    items: list[dict[str, Any]]


class AtRisk(Open):
    pass


class Reconciliation(Open):
    pass


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    database: str
    schema_: str = Field(alias="schema")


class CreditCheck(Open):
    """A kept credit check (CONTRACT.md "Credit checks"); listings and the measure answer add its measures."""

    id: int
    checked_at: str
    subject: dict[str, Any]
    findings: dict[str, Any]
    sources: list[str]
    advice: str
    reasons: list[Any]


class CreditChecks(BaseModel):
    items: list[dict[str, Any]]
    next_after_id: int | None
