"""The JSON Schema files shipped in schemas/contract: exactly what the models generate, valid Draft 2020-12, and
in agreement with the validation the API runs on one corpus of records (tests/corpus.py).

The same corpus goes through the real API in tests/contract/test_contract_corpus.py; here it goes through
``schemas.validation.validate`` directly, which is fast enough to run on every change.
"""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
import pytest

from schemas.enums import Kind
from schemas.jsonschema import CONTRACT_DIR, DRAFT, INEXPRESSIBLE, schema_files
from schemas.validation import Canonical, validate
from tests import corpus

TODAY = dt.date(2026, 11, 25)  # the API tests' clock: 10:00 in Huaihua


def test_checked_in_schemas_match_the_models() -> None:
    for name, text in schema_files().items():
        shipped = (CONTRACT_DIR / name).read_text(encoding="utf-8")
        assert shipped == text, f"{name} drifted: run python -m schemas.jsonschema and review the diff"


@pytest.mark.parametrize("kind", [k.value for k in Kind])
def test_schemas_are_draft_2020_12_and_say_what_they_cannot_check(kind: str) -> None:
    schema = json.loads((CONTRACT_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == DRAFT
    jsonschema.Draft202012Validator.check_schema(schema)
    assert all(rule in schema["description"] for rule in INEXPRESSIBLE)


def test_schemas_name_the_contract_fields() -> None:
    licence = json.loads((CONTRACT_DIR / "licences.schema.json").read_text(encoding="utf-8"))
    assert {"source_id", "counterpart", "decision_date", "valid_to"} <= set(licence["properties"])
    assert "document_number" not in licence["required"]  # the licence number may stand in
    listing = json.loads((CONTRACT_DIR / "list-changes.schema.json").read_text(encoding="utf-8"))
    assert "list" in listing["properties"] and "list" in listing["required"]


def test_every_difference_in_the_corpus_is_a_documented_one() -> None:
    assert {c.unlike_schema for c in corpus.CASES} - {None} == set(corpus.INEXPRESSIBLE) | set(corpus.LENIENT)
    assert len(corpus.CASES) >= 60


@pytest.mark.parametrize("case", corpus.unique(corpus.CASES), ids=lambda c: c.name)
def test_the_schema_and_the_validation_agree_on_the_corpus(case: corpus.Case) -> None:
    result = validate(Kind.from_code(case.kind), case.record, today=TODAY)
    assert isinstance(result, Canonical) == case.api_accepts, result
    assert corpus.schema_accepts(case.kind, case.record) == case.schema_accepts, list(
        corpus.validator(case.kind).iter_errors(case.record)
    )
