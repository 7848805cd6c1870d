"""JSON Schema files of the canonical records, shipped in ``schemas/contract/`` for source systems.

The files are generated from the pydantic models and checked in; a test fails when they drift, so a change to
the contract is always a reviewed diff. Regenerate with ``python -m schemas.jsonschema``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.records import MODELS

CONTRACT_DIR = Path(__file__).parent / "contract"


def schema_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for kind, model in MODELS.items():
        schema: dict[str, Any] = model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"urn:credit-gateway:record:{kind.value}"
        schema["description"] = f"{kind.label} ({kind.value}): canonical record of CONTRACT.md"
        files[f"{kind.value}.schema.json"] = json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return files


def write() -> None:
    CONTRACT_DIR.mkdir(exist_ok=True)
    for name, text in schema_files().items():
        (CONTRACT_DIR / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write()
