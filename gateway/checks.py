"""Credit checks before approval (事前监管, CONTRACT.md "Credit checks"): ask, keep, advise, record the measure.

A check reads the subject's local records and, at the same time, asks the national platform (``gateway.subjects``,
bounded by its deadline); then it keeps the whole query in one transaction with its audit event. What the check
answers is exactly what was kept. Subjects are named by USCC or by identity document, normalised like ingest
(NFKC, upper case, trimmed; USCC and resident-ID check characters verified): names are not unique, so a name
alone is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from gateway import findings
from gateway.clock import Clock, local_date
from gateway.gate import Gate
from gateway.settings import Settings
from gateway.subjects import NationalSubjects
from outbox import checks as kept
from outbox.ingest import Actor
from outbox.store import Store
from schemas import identifiers
from schemas.calendar import end_of_day
from schemas.fields import IdNumber, TextField, Uscc
from schemas.records import IdTypeField

log = logging.getLogger("gateway.checks")

MATTER_TYPES = ("licence", "subsidy", "procurement", "tender", "public_service", "other")
MEASURES = ("refused", "strict_review", "fast_track", "no_effect", "other")
Advice = Literal["restrict", "caution", "reward", "no_record"]


def _one_of(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    """A value from a closed list, refused with the code the record enumerations use (``unknown_value``)."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value.strip() not in allowed:
            raise PydanticCustomError(
                "unknown_value", "'{value}' is not one of: {allowed}", {"value": value, "allowed": ", ".join(allowed)}
            )
        return value.strip()

    return check


MatterType = Annotated[
    str, BeforeValidator(_one_of(MATTER_TYPES)), WithJsonSchema({"type": "string", "enum": list(MATTER_TYPES)})
]
Measure = Annotated[str, BeforeValidator(_one_of(MEASURES)), WithJsonSchema({"type": "string", "enum": list(MEASURES)})]


class Subject(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    uscc: Uscc | None = None
    id_type: IdTypeField | None = None
    id_number: IdNumber | None = None
    name: TextField | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _identified(self) -> Subject:
        if self.uscc is None and self.id_number is None:
            raise PydanticCustomError(
                "identifier_required",
                "name the subject by uscc or by id_type and id_number; a name alone is refused (names are not unique)",
            )
        if self.uscc is not None and self.id_number is not None:
            raise PydanticCustomError("one_identifier", "give either uscc or id_type/id_number, not both")
        if self.id_number is not None and self.id_type is None:
            raise PydanticCustomError("required", "id_type is required with id_number")
        return self

    @property
    def code(self) -> str:
        return self.uscc or self.id_number or ""


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: Subject
    matter: TextField = Field(max_length=500)
    matter_type: MatterType
    department: TextField = Field(max_length=64)
    requested_by: TextField = Field(max_length=64)


class MeasureBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measure: Measure
    note: TextField | None = Field(default=None, max_length=1000)


class IdentifierRefused(ValueError):
    """A resident ID number whose check digit or birth date is wrong."""


class CreditChecks:
    def __init__(self, settings: Settings, store: Store, clock: Clock, gate: Gate | None = None) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.national = NationalSubjects(settings, clock, gate)

    def close(self) -> None:
        self.national.close()

    def run(self, actor: Actor, body: CheckBody) -> dict[str, Any]:
        """Check the subject now; the kept record's view plus the answer's fields."""
        started = time.monotonic()
        subject = body.subject
        now = self.clock.now()
        day = local_date(self.clock)
        if subject.id_type is not None and subject.id_type.value == "resident_id":
            try:
                identifiers.check_resident_id(subject.code, today=day)
            except identifiers.IdentifierError as exc:
                raise IdentifierRefused(str(exc)) from None
        pending = self.national.start(subject.code)
        rules = self.settings.jobs.period_rules
        rows = kept.read_subject(self.store.db, subject.code)
        found = findings.local_findings(rows, day, rules)
        answer = self.national.finish(pending, started)
        sources = ["local"]
        if answer.report is not None:
            findings.add_national(found, answer.report, day, rules)
            sources.append("national")
        else:
            sources.append(f"national:{answer.status}")
        advice, reasons = findings.advise(found)
        new = kept.NewCheck(
            checked_at=now,
            check_date=day,
            actor=actor.name,
            role=actor.role,
            subject_code=subject.code,
            subject_id_type=subject.id_type.value if subject.id_type else None,
            subject_name=found.name or subject.name,
            matter=body.matter,
            matter_type=body.matter_type,
            department=body.department,
            requested_by=body.requested_by,
            findings=found.as_dict(),
            sources=sources,
            national=answer.status,
            advice=advice,
            reasons=reasons,
        )
        check_id = kept.keep(self.store.db, new)
        log.info(
            "credit check %s of %s for %s: %s (%s)",
            check_id,
            new.masked_code(),
            body.department,
            advice,
            ", ".join(sources),
            extra={"action": "credit_check"},
        )
        return kept.view_of_new(new, check_id)

    def measure(self, actor: Actor, check_id: int, body: MeasureBody) -> dict[str, Any]:
        now = self.clock.now()
        self.store.db.transact(
            lambda conn: kept.add_measure(
                conn,
                check_id=check_id,
                measure=body.measure,
                note=body.note,
                actor=actor.name,
                role=actor.role,
                now=now,
            )
        )
        log.info("measure %s recorded on credit check %s", body.measure, check_id, extra={"action": "check_measure"})
        return self.get(check_id)

    def get(self, check_id: int) -> dict[str, Any]:
        return self.store.db.read(lambda conn: kept.get(conn, check_id))

    def listing(
        self,
        *,
        start: dt.date | None,
        end: dt.date | None,
        department: str | None,
        advice: str | None,
        limit: int = 100,
        after_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Checks made on ``start``..``end`` (days in Asia/Shanghai, both included)."""
        lower = end_of_day(start - dt.timedelta(days=1)) if start else None
        upper = end_of_day(end) if end else None
        return self.store.db.read(
            lambda conn: kept.listing(
                conn, start=lower, end=upper, department=department, advice=advice, limit=limit, after_id=after_id
            )
        )

    def purge(self, actor: str) -> int:
        return purge_expired(self.settings, self.store, self.clock, actor)


def purge_expired(settings: Settings, store: Store, clock: Clock, actor: str) -> int:
    """Apply ``checks.retention_days`` (nothing when unset: kept for ever); the CLI and the nightly job call it."""
    days = settings.checks.retention_days
    if days is None:
        return 0
    now = clock.now()
    before = end_of_day(local_date(clock) - dt.timedelta(days=days + 1))
    return store.db.transact(lambda conn: kept.purge(conn, before=before, actor=actor, now=now))
