"""The JSON Schema files shipped in schemas/contract are exactly what the models generate."""

from __future__ import annotations

import json

from schemas.jsonschema import CONTRACT_DIR, schema_files


def test_checked_in_schemas_match_the_models() -> None:
    for name, text in schema_files().items():
        shipped = (CONTRACT_DIR / name).read_text(encoding="utf-8")
        assert shipped == text, f"{name} drifted: run python -m schemas.jsonschema and review the diff"


def test_schemas_name_the_contract_fields() -> None:
    licence = json.loads((CONTRACT_DIR / "licences.schema.json").read_text(encoding="utf-8"))
    assert {"source_id", "counterpart", "decision_date", "valid_to"} <= set(licence["properties"])
    listing = json.loads((CONTRACT_DIR / "list-changes.schema.json").read_text(encoding="utf-8"))
    assert "list" in listing["properties"] and "list" in listing["required"]
