"""The one door into the domain: raw JSON values in, a canonical record (or the reasons it was refused) out."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import errors, rules
from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.records import MODELS, RecordBase


@dataclass(frozen=True, slots=True)
class Canonical:
    """A record that passed every rule, in the normalised form that is stored, hashed and sent."""

    record: RecordBase
    content: dict[str, Any]
    content_hash: str

    @property
    def source_id(self) -> str:
        return self.record.source_id


def validate(kind: Kind, data: Any, *, today: dt.date) -> Canonical | list[FieldError]:
    if not isinstance(data, dict):
        return [FieldError("", "wrong_type", "a record is a JSON object")]
    try:
        record = MODELS[kind].model_validate(data)
    except ValidationError as exc:
        return errors.from_pydantic(exc)
    problems = rules.check(record, today=today)
    if problems:
        return problems
    content = canonical_content(record)
    return Canonical(record, content, content_hash(content))


def canonical_content(record: RecordBase) -> dict[str, Any]:
    return record.model_dump(mode="json", by_alias=True, exclude_none=True)


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 over sorted-key JSON: equal content, equal hash, whatever order or width the source used."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
