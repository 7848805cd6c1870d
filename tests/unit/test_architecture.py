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


# -- the application layer and its edges (ARCHITECTURE.md "Rooms") ------------------------------------------------

EDGES = ["gateway/api", "gateway/cli.py", "gateway/cli_people.py", "gateway/intake.py"]
APPLICATION = [
    "gateway/services",
    "gateway/housekeeping.py",
    "gateway/mailer.py",
    "gateway/reconcile.py",
    "gateway/checks.py",
    "gateway/findings.py",
    "gateway/people.py",
    "gateway/archive",
    "gateway/reports",
]
GROUND_FLOOR = ["schemas/calendar.py", "schemas/deadlines.py", "schemas/expiry.py", "schemas/periods.py"]


def test_routers_and_the_cli_reach_the_store_only_through_the_services() -> None:
    found = [(f, m) for edge in EDGES for f, m in imports(edge) if top(m) == "outbox"]
    assert found == []


def test_the_application_layer_knows_no_http_cli_or_template_types() -> None:
    banned = ("fastapi", "starlette", "typer", "click", "rich", "jinja2", "uvicorn")
    found = [(f, m) for room in APPLICATION for f, m in imports(room) if top(m) in banned]
    assert found == []


def test_the_application_layer_never_imports_the_edges() -> None:
    edges = ("gateway.api", "gateway.app", "gateway.cli", "gateway.cli_people", "gateway.compose", "gateway.server")
    found = [
        (f, m) for room in APPLICATION for f, m in imports(room) if any(m == e or m.startswith(e + ".") for e in edges)
    ]
    assert found == []


def test_the_ground_floor_imports_nothing_of_the_gateway_or_the_outbox() -> None:
    found = [(f, m) for room in GROUND_FLOOR for f, m in imports(room) if top(m) in ("gateway", "outbox", "adapters")]
    assert found == []


def test_one_zone_constant() -> None:
    """Asia/Shanghai is ``schemas.calendar.ZONE``; a second ``ZoneInfo(...)`` could drift from it."""
    found = [
        path.relative_to(ROOT).as_posix()
        for folder in ("schemas", "outbox", "adapters", "gateway")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "ZoneInfo(" in path.read_text(encoding="utf-8")
    ]
    assert found == ["schemas/calendar.py"]


# Reading the time or sleeping: only the clock module does it; everyone else is handed a clock. Durations measured
# with perf_counter or monotonic are not readings of the time of day and stay allowed.
WALL_CLOCK = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "sleep"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("asyncio", "sleep"),
}
CLOCK_READERS = {
    "gateway/clock.py",
    # APScheduler runs on the real time of day: "run now" is stated in its own time base.
    "gateway/worker.py",
}


def _clock_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            found += [f"from {node.module} import {a.name}" for a in node.names if (node.module, a.name) in WALL_CLOCK]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if (name, node.func.attr) in WALL_CLOCK:
                found.append(f"{name}.{node.func.attr}()")
    return found


def test_no_wall_clock_or_sleep_outside_the_clock_module() -> None:
    found = {}
    for folder in ("schemas", "outbox", "adapters", "gateway"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in CLOCK_READERS or relative.startswith("adapters/sandbox/") or "/migrations/" in relative:
                continue
            calls = _clock_calls(path)
            if calls:
                found[relative] = calls
    assert found == {}


def test_the_clock_rule_sees_a_wall_clock_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import datetime as dt\nimport time\nx = dt.datetime.now()\ntime.sleep(1)\n", encoding="utf-8")
    assert _clock_calls(sample) == ["datetime.now()", "time.sleep()"]
