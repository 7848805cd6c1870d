"""The one door into the domain: raw JSON values in, a canonical record (or the reasons it was refused) out."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas import errors, html, rules
from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.records import MAX_HTML_CHARS, MODELS, ArticleBase, Document


@dataclass(frozen=True, slots=True)
class Canonical:
    """A record that passed every rule, in the normalised form that is stored, hashed and sent."""

    record: Document
    content: dict[str, Any]
    content_hash: str
    removed: tuple[html.Removal, ...] = ()  # articles: what cleaning took out of content_html

    @property
    def source_id(self) -> str:
        return self.record.source_id

    def storable(self, submitted: Any) -> Any:
        """What the source sent, as it may be kept: an article's HTML only as cleaned (nothing uncleaned is
        stored, not even in the submitted copy)."""
        if isinstance(self.record, ArticleBase) and isinstance(submitted, dict):
            return {**submitted, "content_html": self.record.content_html}
        return submitted


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
    removed: list[html.Removal] = []
    if isinstance(record, ArticleBase):
        cleaned, removed = html.clean(record.content_html)
        if not cleaned.strip():
            return [FieldError("content_html", "empty_after_cleaning", _EMPTY)]
        if len(cleaned) > MAX_HTML_CHARS:
            return [FieldError("content_html", "too_long", f"is longer than {MAX_HTML_CHARS} characters once cleaned")]
        record = record.model_copy(update={"content_html": cleaned})
    content = canonical_content(record)
    return Canonical(record, content, content_hash(content), tuple(removed))


_EMPTY = "nothing is left once what the portal does not accept is removed (scripts, styles, comments, tags)"


def canonical_content(record: Document) -> dict[str, Any]:
    return record.model_dump(mode="json", by_alias=True, exclude_none=True)


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 over sorted-key JSON: equal content, equal hash, whatever order or width the source used."""
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
