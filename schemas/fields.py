"""Field types of the canonical records: each one normalises what a source sent, then checks it.

Normalisation is deliberately narrow. Codes (USCC, ID numbers) go through NFKC and upper-casing, because
source systems paste them in full width (``９１４３…``); dates go through NFKC for the same reason. Free text only
loses surrounding white space (including the ideographic space U+3000): full-width brackets in Chinese names are
correct and must reach the platforms unchanged.

Every failure is a ``PydanticCustomError`` whose type is the machine-readable ``code`` of CONTRACT.md's error
body, so the API never has to guess what a pydantic message meant.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from schemas import identifiers
from schemas.enums import Labelled

_L = TypeVar("_L", bound=Labelled)

MONEY_MAX_DECIMALS = 6
MONEY_MAX_INTEGER_DIGITS = 12  # decimal(18, 6), as platforms store it
LONG_TERM = dt.date(2099, 12, 31)  # the national standard's way to write 长期
EARLIEST_DATE = dt.date(1949, 10, 1)
"""No date of a record may precede it: every record is an act of a People's Republic authority (a decision, a
commitment, a listing) or a period that follows one, so an earlier date is a typo or a placeholder such as
``0001-01-01`` or ``1899-12-31`` that the platforms would publish as written."""

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Form:
    """What a field type is in the shipped JSON Schema (``schemas.jsonschema`` reads it; pydantic ignores it),
    so the contract files are generated from the same annotations the API validates with."""

    name: str  # text | uscc | id_number | day | money | source_id | html


def _strip_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    # Numbers sent for a text field (a licence number as 4312002026) are text the source meant to send.
    return str(value)


def normalise_code(value: Any) -> Any:
    if isinstance(value, str):
        # NFKC again after upper-casing: a few letters (ΐ, ΰ) upper-case into sequences NFKC composes
        # differently, and normalising a normalised code must change nothing (a stored record re-validates as is)
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).upper()).strip()
    return value


def _parse_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_date", "must be a date written YYYY-MM-DD")
    text = unicodedata.normalize("NFKC", value).strip()
    if not _ISO_DATE.fullmatch(text):
        raise PydanticCustomError("invalid_date", "must be a date written YYYY-MM-DD, got {value}", {"value": text})
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise PydanticCustomError("invalid_date", "{value} is not a real calendar date", {"value": text}) from None
    if day < EARLIEST_DATE:
        raise PydanticCustomError(
            "invalid_date",
            "{value} is before {bound}, the earliest date a record can carry (founding of the People's Republic)",
            {"value": text, "bound": EARLIEST_DATE.isoformat()},
        )
    return day


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise PydanticCustomError("invalid_amount", "must be an amount in 万元, as a number or a decimal string")
    text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else str(value)
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(text):  # no sign, exponent, "_" or bare "."
        raise PydanticCustomError("invalid_amount", "{value} is not a decimal amount", {"value": text})
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise PydanticCustomError("invalid_amount", "{value} is not a decimal amount", {"value": text}) from None
    if not amount.is_finite() or amount < 0:
        raise PydanticCustomError("invalid_amount", "must be a finite amount of 0 or more 万元")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MONEY_MAX_DECIMALS:
        raise PydanticCustomError(
            "too_many_decimals",
            "amounts in 万元 take at most 6 decimals (1 = 10,000 yuan), got {value}",
            {"value": text},
        )
    if amount.adjusted() >= MONEY_MAX_INTEGER_DIGITS:
        raise PydanticCustomError("invalid_amount", "amount {value} 万元 is beyond 12 integer digits", {"value": text})
    return amount


def _check_uscc(value: str) -> str:
    try:
        return identifiers.check_uscc(value)
    except identifiers.IdentifierError as exc:
        raise PydanticCustomError("invalid_uscc", str(exc)) from None


def _check_source_id(value: str) -> str:
    if "/" in value or not value.isprintable():  # a source_id is a URL path segment
        raise PydanticCustomError(
            "invalid_source_id", "source_id may not contain '/', control characters or line breaks"
        )
    return value


def enum_of(cls: type[_L]) -> Callable[[Any], _L]:
    """A before-validator accepting a member's code or its Chinese label."""

    def parse(value: Any) -> _L:
        if isinstance(value, cls):
            return value
        member = cls.parse(value) if isinstance(value, str) else None
        if member is None:
            raise PydanticCustomError(
                "unknown_value", "'{value}' is not one of: {allowed}", {"value": value, "allowed": cls.allowed()}
            )
        return member

    return parse


TextField = Annotated[str, BeforeValidator(_strip_text), StringConstraints(min_length=1, strict=True), Form("text")]
"""Free text: trimmed and non-empty; each field adds the standard's 最大长度 with ``Field(max_length=...)``."""

Uscc = Annotated[
    str,
    BeforeValidator(normalise_code),
    StringConstraints(strict=True, min_length=1),
    AfterValidator(_check_uscc),
    Form("uscc"),
]
IdNumber = Annotated[
    str,
    BeforeValidator(normalise_code),
    StringConstraints(strict=True, min_length=1, max_length=64),
    Form("id_number"),
]
Day = Annotated[dt.date, BeforeValidator(_parse_date), Form("day")]
Money = Annotated[Decimal, BeforeValidator(_parse_money), Form("money")]
Html = Annotated[str, StringConstraints(strict=True, min_length=1), Form("html")]
"""An HTML fragment as the source wrote it (an article's 正文); each field adds its length with ``Field``."""

SourceId = Annotated[
    str,
    BeforeValidator(_strip_text),
    StringConstraints(strict=True, min_length=1, max_length=64),
    AfterValidator(_check_source_id),
    Form("source_id"),
]
