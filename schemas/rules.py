"""Rules that tie fields of a record together (STANDARDS.md §1.5, CONTRACT.md).

Each rule returns ``FieldError``s naming the field it is about, so a source learns exactly which value to fix.
They run after the shape is valid and need today's date (Asia/Shanghai) from the caller: this module never
reads the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from schemas import identifiers
from schemas.enums import CounterpartCategory, Fulfilment, IdType, PenaltyCategory
from schemas.errors import FieldError
from schemas.records import (
    ArticleBase,
    Case,
    Commitment,
    Counterpart,
    Document,
    Licence,
    ListChange,
    Penalty,
    RecordBase,
)

LEGAL = CounterpartCategory.LEGAL_ENTITY
INDIVIDUAL = CounterpartCategory.INDIVIDUAL_BUSINESS
PERSON = CounterpartCategory.NATURAL_PERSON


def check(record: Document, *, today: dt.date) -> list[FieldError]:
    if isinstance(record, ArticleBase):
        return list(_article(record, today))
    errors = list(_counterpart(record.counterpart, today)) if isinstance(record, RecordBase) else []
    match record:
        case Licence():
            errors += _licence(record, today)
        case Penalty():
            errors += _penalty(record, today)
        case Commitment():
            errors += _commitment(record, today)
        case ListChange():
            errors += _list_change(record)
    return errors


def _counterpart(cp: Counterpart, today: dt.date) -> Iterator[FieldError]:
    field = "counterpart."
    if cp.category is LEGAL:
        if cp.uscc is None:
            yield FieldError(field + "uscc", "required", "is required for 法人及非法人组织 (legal_entity)")
        if cp.legal_representative is None:
            yield FieldError(
                field + "legal_representative", "required", "is required for 法人及非法人组织 (legal_entity)"
            )
        for name in ("id_type", "id_number"):
            if getattr(cp, name) is not None:
                yield FieldError(
                    field + name, "not_applicable", "belongs to natural persons; organisations are identified by uscc"
                )
    elif cp.category is INDIVIDUAL:
        if cp.uscc is None and cp.id_number is None:
            yield FieldError(
                field + "uscc", "required", "is required for 个体工商户 (individual_business) unless id_number is given"
            )
    elif cp.category is PERSON:
        if cp.uscc is not None:
            yield FieldError(
                field + "uscc", "not_applicable", "natural persons have no 统一社会信用代码; use id_number"
            )
        if cp.id_type is None:
            yield FieldError(field + "id_type", "required", "is required for 自然人 (natural_person)")
        if cp.id_number is None:
            yield FieldError(field + "id_number", "required", "is required for 自然人 (natural_person)")
    yield from _document(cp, "", today)
    yield from _document(cp, "legal_representative_", today)


def _document(cp: Counterpart, prefix: str, today: dt.date) -> Iterator[FieldError]:
    """An identity document: type and number come as a pair; resident IDs get the GB 11643 check."""
    field = "counterpart." + prefix
    id_type: IdType | None = getattr(cp, prefix + "id_type")
    number: str | None = getattr(cp, prefix + "id_number")
    other: str | None = getattr(cp, prefix + "id_type_other")
    if number is not None and id_type is None:
        yield FieldError(field + "id_type", "required", f"is required when {prefix}id_number is given")
    if id_type is not None and number is None and (prefix or cp.category is not PERSON):
        yield FieldError(field + "id_number", "required", f"is required when {prefix}id_type is given")
    if id_type is IdType.OTHER and other is None:
        yield FieldError(field + "id_type_other", "required", "names the document when id_type is other (其他-…)")
    if id_type is IdType.RESIDENT_ID and number is not None:
        try:
            identifiers.check_resident_id(number, today=today)
        except identifiers.IdentifierError as exc:
            yield FieldError(field + "id_number", "invalid_id_number", str(exc))


def _not_after_today(field: str, value: dt.date, today: dt.date) -> Iterator[FieldError]:
    if value > today:
        yield FieldError(field, "future_date", f"{value.isoformat()} is after today ({today.isoformat()})")


def _not_before(field: str, value: dt.date | None, start_field: str, start: dt.date) -> Iterator[FieldError]:
    if value is not None and value < start:
        yield FieldError(field, "date_order", f"may not be earlier than {start_field} ({start.isoformat()})")


def _licence(rec: Licence, today: dt.date) -> Iterator[FieldError]:
    yield from _not_after_today("decision_date", rec.decision_date, today)
    yield from _not_before("valid_to", rec.valid_to, "valid_from", rec.valid_from)


def _penalty(rec: Penalty, today: dt.date) -> Iterator[FieldError]:
    yield from _not_after_today("decision_date", rec.decision_date, today)
    yield from _not_before("valid_until", rec.valid_until, "decision_date", rec.decision_date)
    yield from _not_before("publish_until", rec.publish_until, "decision_date", rec.decision_date)
    seen: set[PenaltyCategory] = set()
    for i, cat in enumerate(rec.penalty_categories):
        if cat in seen:
            yield FieldError(f"penalty_categories[{i}]", "duplicate_value", f"{cat.value} is listed twice")
        seen.add(cat)
    if PenaltyCategory.FINE in seen and rec.fine_amount is None:
        yield FieldError("fine_amount", "required", "is required when penalty_categories includes fine (罚款)")
    if PenaltyCategory.FINE in seen and rec.fine_amount == 0:
        yield FieldError("fine_amount", "invalid_amount", "must be above 0 when penalty_categories includes fine")


def _commitment(rec: Commitment, today: dt.date) -> Iterator[FieldError]:
    yield from _not_after_today("commitment_date", rec.commitment_date, today)
    yield from _not_before("valid_until", rec.valid_until, "commitment_date", rec.commitment_date)
    if rec.fulfilment in (Fulfilment.PARTIAL, Fulfilment.UNFULFILLED):
        for name in ("unfulfilled_content", "liability_action"):
            if getattr(rec, name) is None:
                yield FieldError(name, "required", "is required when fulfilment is partial or unfulfilled")


def _article(rec: ArticleBase, today: dt.date) -> Iterator[FieldError]:
    yield from _not_after_today("published_on", rec.published_on, today)
    if isinstance(rec, Case) and rec.counterpart is not None:
        yield from _counterpart(rec.counterpart, today)


def _list_change(rec: ListChange) -> Iterator[FieldError]:
    yield from _not_before("expiry_date", rec.expiry_date, "effective_date", rec.effective_date)
