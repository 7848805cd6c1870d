"""JSON Schema (Draft 2020-12) files of the canonical records, shipped in ``schemas/contract/`` for source systems.

They are generated from the pydantic models the API validates with: each field's JSON form comes from the
``Form`` marker on its annotated type (``schemas.fields``), its length from the field's ``max_length``, its
enumeration from the enum's codes, Chinese labels and aliases, and whether it is required from the model. The
rules of ``schemas.rules`` that tie fields together are written here as ``if``/``then``, ``anyOf`` and
``contains``, next to each other so a change to one is seen beside the other; a corpus test
(tests/contract/test_contract_corpus.py) runs the same records through the API and these files and fails on any
disagreement but the documented ones.

What JSON Schema cannot say is listed in each file's ``description`` (``INEXPRESSIBLE``) and in the README:
check characters and digits, "not after today", the order of two dates, real calendar dates, the decimal places
of an amount sent as a JSON number.

The files are checked in (a change is a reviewed diff) and a test fails when they drift. Regenerate them with
``python -m schemas.jsonschema`` (or ``make contract``).
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas import identifiers
from schemas.enums import (
    CounterpartCategory,
    Fulfilment,
    IdType,
    Kind,
    Labelled,
    PenaltyCategory,
    spellings,
    spellings_of,
)
from schemas.fields import EARLIEST_DATE, MONEY_MAX_DECIMALS, MONEY_MAX_INTEGER_DIGITS, Form
from schemas.records import MODELS, ArticleBase, Counterpart, Document

CONTRACT_DIR = Path(__file__).parent / "contract"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

INEXPRESSIBLE = (
    "统一社会信用代码 check character (GB 32100): the pattern checks the characters, the API the check character",
    "resident ID numbers (身份证): the pattern checks the province and the shape, the API also the birth date "
    "(a real date from 1900 to today) and the GB 11643 check digit",
    "dates are real calendar dates (no 2027-02-29): the pattern checks the shape, the months and days 01-31",
    "decision_date, commitment_date and published_on are not after today (Asia/Shanghai)",
    "end dates are not before their start: valid_to >= valid_from; valid_until and publish_until >= "
    "decision_date; valid_until >= commitment_date; expiry_date >= effective_date",
    f"amounts sent as JSON numbers take at most {MONEY_MAX_DECIMALS} decimals (decimal strings are checked here)",
    "source_id has no format or unassigned characters (control characters, '/' and line breaks are checked here)",
)
ARTICLE_NOTES = (
    "content_html is cleaned to the portal's allow-list before it is stored (p br strong em b i u ul ol li table "
    "thead tbody tr th td, img with an https: src and an alt, a with an https: href); the answer lists what was "
    "removed, and a fragment with nothing left once cleaned is refused",
)
LENIENT = (
    "enumerations also match with surrounding spaces and in any letter case (' Legal_Entity ')",
    "codes, dates and amounts are read after Unicode NFKC: full-width forms are in the patterns, other "
    "compatibility forms are not",
)


# -- patterns --------------------------------------------------------------------------------------------------


def _wide(ch: str) -> str:
    """``ch`` and its full-width form (U+FF01..U+FF5E), which NFKC folds back."""
    return ch + chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def _class(chars: str) -> str:
    """A character class of ``chars`` as sources may write them: ASCII or full width, either letter case."""
    found: list[str] = []
    for ch in chars:
        for variant in dict.fromkeys((ch, ch.lower())):
            found += _wide(variant)
    escaped = "".join("\\" + c if c in "\\]-^" else c for c in dict.fromkeys(found))
    return f"[{escaped}]"


DIGITS = "0123456789"
D = _class(DIGITS)


def _digit_range(low: str, high: str) -> str:
    return _class(DIGITS[int(low) : int(high) + 1])


def _literal(text: str) -> str:
    return "".join(_class(ch) if ch.isalnum() or ch in "-." else ch for ch in text)


def _trimmed(pattern: str) -> str:
    """The value after surrounding white space (the ideographic space too) is trimmed, as the API trims."""
    return f"^\\s*{pattern}\\s*$"


def text_pattern(max_length: int) -> str:
    """1 to ``max_length`` characters once trimmed: what ``str.strip`` and the length check leave."""
    return _trimmed(f"\\S(?:[\\s\\S]{{0,{max_length - 2}}}\\S)?")


USCC_PATTERN = _trimmed(D + "{8}" + _class("0123456789ABCDEFGHJKLMNPQRTUWXY") + "{10}")
RESIDENT_ID_PATTERN = _trimmed(
    "(?:" + "|".join(_literal(p) for p in sorted(identifiers.PROVINCE_CODES)) + ")" + D + "{15}" + _class(DIGITS + "X")
)
_MONTH = f"(?:{_literal('0')}{_digit_range('1', '9')}|{_literal('1')}{_digit_range('0', '2')})"
_DAY = (
    f"(?:{_literal('0')}{_digit_range('1', '9')}|{_digit_range('1', '2')}{D}|{_literal('3')}{_digit_range('0', '1')})"
)
_DASH = _literal("-")


def _date_pattern() -> str:
    """YYYY-MM-DD on or after EARLIEST_DATE (1949-10-01): later years, or 1949 from its month 10."""
    assert (EARLIEST_DATE.year, EARLIEST_DATE.month, EARLIEST_DATE.day) == (1949, 10, 1)  # the regex below
    later = f"(?:{_literal('19')}{_digit_range('5', '9')}{D}|{_digit_range('2', '9')}{D}{{3}})"
    later_years = f"{later}{_DASH}{_MONTH}{_DASH}{_DAY}"
    last_quarter = f"{_literal('1949')}{_DASH}{_literal('1')}{_digit_range('0', '2')}{_DASH}{_DAY}"
    return _trimmed(f"(?:{later_years}|{last_quarter})")


DATE_PATTERN = _date_pattern()
MONEY_PATTERN = _trimmed(
    f"{_literal('0')}*{D}{{1,{MONEY_MAX_INTEGER_DIGITS}}}(?:{_literal('.')}{D}{{1,{MONEY_MAX_DECIMALS}}})?"
)
ZERO_PATTERN = _trimmed(f"{_literal('0')}+(?:{_literal('.')}{_literal('0')}+)?")
_SOURCE_CHAR = "[^/\\s\\x00-\\x1f\\x7f-\\x9f]"
SOURCE_ID_PATTERN = _trimmed(f"{_SOURCE_CHAR}(?:(?:{_SOURCE_CHAR}| ){{0,62}}{_SOURCE_CHAR})?")


# -- field forms -----------------------------------------------------------------------------------------------


def _metadata(field: FieldInfo) -> tuple[type | None, list[Any], bool]:
    """(the base type, all metadata, whether null is allowed) of a model field, through ``X | None``."""
    annotation: Any = field.annotation
    metadata = list(field.metadata)
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    if typing.get_origin(annotation) is typing.Annotated:
        base, *more = typing.get_args(annotation)
        return base, metadata + more, nullable
    return annotation, metadata, nullable


def _max_length(metadata: list[Any]) -> int | None:
    for m in metadata:
        if isinstance(m, annotated_types.MaxLen):
            return m.max_length
        limit = getattr(m, "max_length", None)
        if isinstance(limit, int):
            return limit
    return None


def _enum(cls: type[Labelled], nullable: bool) -> dict[str, Any]:
    return {"enum": [*spellings(cls), *([None] if nullable else [])]}


def _form(name: str, metadata: list[Any]) -> dict[str, Any]:
    limit = _max_length(metadata)
    if name == "text":
        assert limit is not None, "every text field has the standard's length"
        return {
            "type": ["string", "number"],
            "pattern": text_pattern(limit),
            "description": f"1 to {limit} characters once surrounding white space is trimmed",
        }
    if name == "uscc":
        return {"type": "string", "pattern": USCC_PATTERN, "description": "统一社会信用代码, 18 characters (GB 32100)"}
    if name == "id_number":
        return {"type": "string", "pattern": text_pattern(limit or 64)}
    if name == "day":
        return {
            "type": "string",
            "pattern": DATE_PATTERN,
            "description": f"a date written YYYY-MM-DD, not before {EARLIEST_DATE.isoformat()}",
        }
    if name == "money":
        return {
            "type": ["string", "number"],
            "pattern": MONEY_PATTERN,
            "minimum": 0,
            "exclusiveMaximum": 10**MONEY_MAX_INTEGER_DIGITS,
            "description": f"万元 (1 = 10,000 yuan): a number or a decimal string of at most "
            f"{MONEY_MAX_INTEGER_DIGITS} integer digits and {MONEY_MAX_DECIMALS} decimals",
        }
    if name == "html":
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": limit,
            "description": f"an HTML fragment of at most {limit} characters, cleaned to the portal's allow-list",
        }
    if name == "source_id":
        return {
            "type": ["string", "number"],
            "pattern": SOURCE_ID_PATTERN,
            "description": "the source system's id: 1 to 64 characters, no '/', control characters or line breaks",
        }
    raise AssertionError(f"no JSON form for {name}")


def field_schema(field: FieldInfo) -> tuple[dict[str, Any], bool]:
    """A field's JSON Schema and whether it may be null."""
    base, metadata, nullable = _metadata(field)
    forms = [m for m in metadata if isinstance(m, Form)]
    if forms:
        schema = _form(forms[0].name, metadata)
    elif base is bool:
        schema = {"type": "boolean"}
    elif isinstance(base, type) and issubclass(base, Labelled):
        return _enum(base, nullable), nullable
    elif isinstance(base, type) and issubclass(base, BaseModel):
        schema = {"$ref": f"#/$defs/{base.__name__}"}
    elif typing.get_origin(base) is list:
        (inner,) = typing.get_args(base)
        member = typing.get_args(inner)[0] if typing.get_origin(inner) is typing.Annotated else inner
        assert issubclass(member, Labelled)
        lengths = {type(m): m for m in metadata}
        schema = {
            "type": "array",
            "items": _enum(member, False),
            "minItems": lengths[annotated_types.MinLen].min_length,
            "maxItems": lengths[annotated_types.MaxLen].max_length,
        }
    else:
        raise AssertionError(f"no JSON form for {field}")
    if nullable:
        schema = _nullable(schema)
    return schema, nullable


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return schema | {"type": [kinds, "null"]}
    if isinstance(kinds, list):
        return schema | {"type": [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def object_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        properties[key], _ = field_schema(field)
        if field.is_required():
            required.append(key)
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# -- rules between fields (schemas.rules) ----------------------------------------------------------------------


def present(name: str) -> dict[str, Any]:
    """The field is there and not null (the API treats null as absent)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def absent(name: str) -> dict[str, Any]:
    return {"properties": {name: {"type": "null"}}}


def one_of_members(name: str, *members: Labelled) -> dict[str, Any]:
    """``name`` names one of ``members`` (by code, label or alias)."""
    return {"required": [name], "properties": {name: {"enum": [s for m in members for s in spellings_of(m)]}}}


def when(condition: dict[str, Any], then: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    return {"if": condition, "then": {"allOf": then} if isinstance(then, list) else then}


def _document_rules(prefix: str) -> list[dict[str, Any]]:
    id_type, number, other = prefix + "id_type", prefix + "id_number", prefix + "id_type_other"
    return [
        when(present(number), present(id_type)),
        when(present(id_type), present(number)),
        when(one_of_members(id_type, IdType.OTHER), present(other)),
        when(
            {"allOf": [one_of_members(id_type, IdType.RESIDENT_ID), present(number)]},
            {"properties": {number: {"pattern": RESIDENT_ID_PATTERN}}},
        ),
    ]


def counterpart_rules() -> list[dict[str, Any]]:
    legal, individual, person = (
        CounterpartCategory.LEGAL_ENTITY,
        CounterpartCategory.INDIVIDUAL_BUSINESS,
        CounterpartCategory.NATURAL_PERSON,
    )
    return [
        when(
            one_of_members("category", legal),
            [present("uscc"), present("legal_representative"), absent("id_type"), absent("id_number")],
        ),
        when(one_of_members("category", individual), {"anyOf": [present("uscc"), present("id_number")]}),
        when(one_of_members("category", person), [absent("uscc"), present("id_type"), present("id_number")]),
        *_document_rules(""),
        *_document_rules("legal_representative_"),
    ]


def _truthy_text(name: str) -> dict[str, Any]:
    """What ``data.get(name)`` finds true: a non-empty string or a non-zero number."""
    return {
        "required": [name],
        "properties": {name: {"anyOf": [{"type": "string", "minLength": 1}, {"type": "number", "not": {"const": 0}}]}},
    }


def kind_rules(kind: Kind, schema: dict[str, Any]) -> list[dict[str, Any]]:
    props = schema["properties"]
    if kind is Kind.LICENCE:
        # STANDARDS.md §1.2 #15: without a document number, the licence number stands in for it
        props["document_number"] = {"anyOf": [props["document_number"], {"const": ""}, {"type": "null"}]}
        schema["required"].remove("document_number")
        return [{"anyOf": [present("document_number"), _truthy_text("licence_number")]}]
    if kind is Kind.PENALTY:
        fine = spellings_of(PenaltyCategory.FINE)
        once = [
            {"contains": {"enum": spellings_of(member)}, "minContains": 0, "maxContains": 1}
            for member in PenaltyCategory
        ]
        props["penalty_categories"]["allOf"] = once
        zero = {"anyOf": [{"const": 0}, {"type": "string", "pattern": ZERO_PATTERN}]}
        fined = {"required": ["penalty_categories"], "properties": {"penalty_categories": {"contains": {"enum": fine}}}}
        return [when(fined, [present("fine_amount"), {"properties": {"fine_amount": {"not": zero}}}])]
    if kind is Kind.COMMITMENT:
        owed = one_of_members("fulfilment", Fulfilment.PARTIAL, Fulfilment.UNFULFILLED)
        return [when(owed, [present("unfulfilled_content"), present("liability_action")])]
    return []


# -- the files -------------------------------------------------------------------------------------------------


def record_schema(kind: Kind) -> dict[str, Any]:
    model: type[Document] = MODELS[kind]
    schema = object_schema(model, "")
    rules = kind_rules(kind, schema)
    counterpart = object_schema(
        Counterpart, "行政相对人 (for commitments: the committer; for list changes: the subject)"
    )
    counterpart["allOf"] = counterpart_rules()
    unsaid = INEXPRESSIBLE + (ARTICLE_NOTES if issubclass(model, ArticleBase) else ())
    described = (
        f"{kind.label} ({kind.value}): the canonical record of CONTRACT.md, generated from the models the API "
        "validates with (python -m schemas.jsonschema). Checked by the API only, as JSON Schema cannot say it: "
        + "; ".join(unsaid)
        + ". Also accepted by the API: "
        + "; ".join(LENIENT)
        + "."
    )
    document: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"urn:credit-gateway:record:{kind.value}",
        "title": f"{kind.label} {kind.value}",
        **schema,
        "description": described,
    }
    if "counterpart" in model.model_fields:
        document["$defs"] = {"Counterpart": counterpart}
    if rules:
        document["allOf"] = rules
    return document


def schema_files() -> dict[str, str]:
    return {
        f"{kind.value}.schema.json": json.dumps(record_schema(kind), ensure_ascii=False, indent=2) + "\n"
        for kind in MODELS
    }


def write() -> None:
    CONTRACT_DIR.mkdir(exist_ok=True)
    for name, text in schema_files().items():
        (CONTRACT_DIR / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write()
