"""ARCHITECTURE.md's "never" rules, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("room", ["schemas", "outbox", "adapters"])
def test_inner_rooms_never_import_the_gateway(room: str) -> None:
    assert [(f, m) for f, m in imports(room) if top(m) == "gateway"] == []


def test_schemas_import_nothing_of_ours() -> None:
    assert [(f, m) for f, m in imports("schemas") if top(m) in ("outbox", "adapters", "gateway")] == []


def test_adapters_never_touch_the_database() -> None:
    banned = ("sqlalchemy", "sqlmodel", "psycopg", "outbox")
    found = [(f, m) for f, m in imports("adapters") if top(m) in banned and "/sandbox/" not in f]
    assert found == []


def test_the_sandbox_never_imports_the_adapters() -> None:
    found = [
        (f, m)
        for f, m in imports("adapters/sandbox")
        if top(m) in ("adapters", "gateway", "outbox", "schemas") and not m.startswith("adapters.sandbox")
    ]
    assert found == []


def test_outbox_never_speaks_http() -> None:
    assert [(f, m) for f, m in imports("outbox") if top(m) in ("httpx", "adapters", "fastapi", "starlette")] == []


# Statements that write audit_event themselves, allowed because they only run on PostgreSQL, whose trigger chains
# every inserted row (outbox/audit.py); everywhere else an entry goes through audit.append, which chains it on SQLite.
POSTGRES_ONLY_AUDIT_WRITES = {"outbox/ingest.py": 1, "outbox/checks.py": 1}


def test_every_audit_entry_goes_through_the_chain() -> None:
    found: dict[str, int] = {}
    for folder in ("outbox", "gateway"):
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if relative == "outbox/audit.py" or "/migrations/" in relative:
                continue
            text = path.read_text(encoding="utf-8")
            count = text.count("INSERT INTO audit_event") + text.count("insert(audit_event")
            count += text.count("insert(tables.audit_event")
            if count:
                found[relative] = count
    assert found == POSTGRES_ONLY_AUDIT_WRITES
