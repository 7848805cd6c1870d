"""The CLI's manners, as a user meets them: the `make run` demo reached from any folder of the project, no database
made by a command that only reads or acts, and one line (never a traceback) for a bad value."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cli import env_for, free_port, run, running
from tests.factories import licence

PASSWORD = "hunter2-not-shown"


def _plain_env(**extra: str) -> dict[str, str]:
    """The environment of a user who configured nothing: the CLI finds the project's database by itself."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")} | extra


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _run_all(commands: Sequence[list[str]], envs: Sequence[dict[str, str]], cwd: Path) -> list[Any]:
    """Each command as its own process, a few at once (each spends its second importing, not waiting)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c, e: run(c, e, cwd), commands, envs))


class Demo:
    def __init__(self, root: Path, base: str, env: dict[str, str]) -> None:
        self.root, self.base, self.env = root, base, env
        self.sub = root / "docs" / "notes"  # a folder of the project, two levels down

    def cli(self, *args: str) -> Any:
        return run(list(args), self.env, self.sub)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """`make run` in a project folder: `serve --sandbox` on the default ./credit-gateway.db, one per module."""
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text('[project]\nname = "credit-gateway"\nversion = "0"\n', encoding="utf-8")
    (root / "docs" / "notes").mkdir(parents=True)
    port = free_port()
    env = _plain_env(CREDIT_GATEWAY_PORT=str(port), CREDIT_GATEWAY_JOBS__IN_SERVE="false")
    with running(["serve", "--sandbox"], env, root):
        yield Demo(root, f"http://127.0.0.1:{port}", env)


def _wait_published(demo: Demo, source_id: str, target: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        shown = demo.cli("records", "show", "licences", source_id, "--json")
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        if any(d["target"] == target and d["state"] == "published" for d in view["deliveries"]):
            return dict(view)
        assert time.monotonic() < deadline, view["deliveries"]
        time.sleep(0.3)  # polling the command with a deadline (the state lives in another process)


def test_the_demo_from_a_subfolder_reconciles_and_shows_records(demo: Demo) -> None:
    made = demo.cli("keys", "create", "--name", "approval-system", "--role", "source")
    assert made.returncode == 0, made.stderr
    operator = demo.cli("keys", "create", "--name", "ops", "--role", "operator")
    key, ops = made.stdout.split()[-1], operator.stdout.split()[-1]
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    posted = httpx.post(
        f"{demo.base}/api/v1/licences",
        json=licence("DEMO-1", decision_date=today, valid_from=today),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert posted.status_code == 201, posted.text
    view = _wait_published(demo, "DEMO-1", "national")

    reconciled = demo.cli("targets", "reconcile", "national")  # was "connection refused": the standalone port
    assert reconciled.returncode == 0, reconciled.stderr
    assert "national: held" in reconciled.stderr and "missing 0" in reconciled.stderr

    api = httpx.get(f"{demo.base}/api/v1/licences/DEMO-1", headers={"Authorization": f"Bearer {ops}"}).json()
    assert view["versions"] == api["versions"] and view["id"] == api["id"]  # the same record view service
    table = demo.cli("records", "show", "licences", "DEMO-1")
    assert table.returncode == 0, table.stderr
    for shown in (
        "DEMO-1",
        "versions",
        "deliveries",
        "attempts",
        "national",
        "published",
        view["versions"][0]["content_hash"],
    ):
        assert shown in table.stdout

    month = today[:7]
    rates = demo.cli("rates", "--period", month, "--json")
    assert rates.returncode == 0, rates.stderr
    live = httpx.get(f"{demo.base}/api/v1/rates", params={"period": month}, headers={"Authorization": f"Bearer {ops}"})
    mine, theirs = json.loads(rates.stdout), live.json()
    assert mine["period"] == theirs["period"] == month
    assert mine["summary"]["records"] == theirs["summary"]["records"] == 1
    assert {(g["target"], g["kind"], g["department"]) for g in mine["groups"]} == {
        (g["target"], g["kind"], g["department"]) for g in theirs["groups"]
    }
    table = demo.cli("rates", "--period", month)
    assert table.returncode == 0 and "national" in table.stdout and "licences" in table.stdout
    assert f"{month}: 公示率" in table.stderr

    assert not list(demo.sub.rglob("credit-gateway.db*"))  # the project's database, not a new one here
    assert (demo.root / "credit-gateway.db").is_file()


def test_the_demo_says_where_its_sandbox_is_only_while_it_runs(demo: Demo) -> None:
    marker = demo.root / "credit-gateway.db.sandbox.json"
    assert json.loads(marker.read_text(encoding="utf-8"))["base_url"] == f"{demo.base}/sandbox"
    # a configured base URL wins over the demo's: the CLI then goes where it is told (here: nowhere)
    told = run(
        ["targets", "reconcile", "national"],
        demo.env | {"CREDIT_GATEWAY_TARGETS__NATIONAL__BASE_URL": f"http://127.0.0.1:{free_port()}/national"},
        demo.sub,
    )
    assert told.returncode == 1 and "Traceback" not in told.stderr


COMMANDS = [
    ["keys", "create", "--name", "x", "--role", "source"],
    ["deliveries", "requeue", "1"],
    ["targets", "reconcile", "national"],
    ["records", "show", "licences", "X-1"],
    ["rates", "--period", "2026-10"],
    ["users", "list"],
    ["worker"],
]
MORE_COMMANDS = [
    ["keys", "list"],
    ["keys", "revoke", "cgk_abcdef"],
    ["deliveries", "dead"],
    ["deliveries", "cancel", "1"],
    ["deliveries", "at-risk"],
    ["targets", "status"],
    ["targets", "pause", "national"],
    ["targets", "resume", "national"],
    ["targets", "replay", "national", "--since", "2026-01-01"],
    ["report", "--period", "2026-10", "--no-store", "-f", "json"],
    ["expire"],
    ["audit", "list"],
    ["audit", "verify"],
    ["checks", "list", "--period", "2026-10"],
    ["checks", "run", "--matter", "m", "--department", "d", "--uscc", "91431200MA4L7P2K85"],
]


def _looked_for_the_database(commands: list[list[str]], folder: Path) -> None:
    where = folder / "credit-gateway.db"
    for command, result in zip(commands, _run_all(commands, [_plain_env()] * len(commands), folder), strict=True):
        assert result.returncode == 1, (command, result.stderr)
        line = _one_line(result.stderr)
        assert f"no credit-gateway database at sqlite:///{where}" in line, (command, line)
    assert list(folder.iterdir()) == []


@pytest.mark.slow
def test_no_other_command_makes_a_database_either(tmp_path: Path) -> None:
    _looked_for_the_database(MORE_COMMANDS, tmp_path)


def test_only_serve_and_migrate_make_a_database(tmp_path: Path) -> None:
    env = _plain_env()
    where = tmp_path / "credit-gateway.db"
    _looked_for_the_database(COMMANDS, tmp_path)

    sqlite3.connect(where).close()  # a database file nobody migrated
    unmigrated = run(["keys", "list"], env, tmp_path)
    assert unmigrated.returncode == 1
    assert "is not at the newest schema: run `credit-gateway migrate`" in _one_line(unmigrated.stderr)

    elsewhere = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/no_such_database_h_cli"
    refused = run(["keys", "list"], env | {"CREDIT_GATEWAY_DATABASE_URL": elsewhere}, tmp_path)
    line = _one_line(refused.stderr)
    assert refused.returncode == 1 and "postgresql://postgres:***@127.0.0.1:5432/no_such_database_h_cli" in line
    assert PASSWORD not in refused.stderr

    assert run(["migrate"], env, tmp_path).returncode == 0
    assert run(["keys", "list"], env, tmp_path).returncode == 0


Case = tuple[list[str], dict[str, str], str]
# the issue's own examples
BAD_VALUES: list[Case] = [
    (["deliveries", "at-risk", "--workdays", "-3"], {}, "'--workdays'"),
    (["report", "--period", "2026-10", "--as-of", "2026-02-30"], {}, "'--as-of': takes a day as YYYY-MM-DD"),
    (["keys", "list"], {"CREDIT_GATEWAY_DATABASE_URL": "not-a-url"}, "database_url: "),
    (["deliveries", "requeue", "999", "1000"], {}, "no delivery with id 999, 1000; nothing requeued"),
    (["deliveries", "dead", "--target", "foo"], {}, "'foo' is not a target; choose one of national, provincial"),
    (["records", "show", "licences", "NOPE"], {}, "no licences record with source_id 'NOPE'"),
]
# the sweep of every command with a bad value
MORE_BAD_VALUES: list[Case] = [
    (["rates", "--period", "2026-10", "--as-of", "2026-02-30"], {}, "day is out of range for month"),
    (["rates", "--period", "2026-13"], {}, "period '2026-13'"),
    (["keys", "list"], {"CREDIT_GATEWAY_DATABASE_URL": "mysql://u@h/db"}, "database_url: "),
    (["deliveries", "cancel", "77"], {}, "no delivery with id 77; nothing cancelled"),
    (["deliveries", "requeue", "abc"], {}, "Invalid value for 'ids'"),
    (["records", "show", "permits", "X"], {}, "'permits' is not a record kind"),
    (["targets", "replay", "national", "--since", "2026-02-30"], {}, "'--since': takes a day"),
    (["rates", "--period", "2026-12", "--as-of", "1900-01-01"], {}, "takes a day from 1949-01-01 to 2099-12-31"),
    (["targets", "reconcile", "county"], {}, "'county' is not a target"),
    (["keys", "list", "--bogus"], {}, "No such option: --bogus"),
    (["serve", "--port", "70000"], {}, "'--port'"),
    (["checks", "list", "--period", "soon"], {}, "period 'soon'"),
    (["deliveries", "dead", "--kind", "permits"], {}, "'permits' is not a record kind"),
    (["deliveries", "dead", "--limit", "0"], {}, "'--limit'"),
    (["keys", "create", "--name", " ", "--role", "source"], {}, "--name must name the key's holder"),
    (["report", "--period", "2026-10", "-f", "json", "-o", "/nonexistent/r.json"], {}, "no folder /nonexistent"),
]


def _refused_in_one_line(cases: list[Case], tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    results = _run_all([args for args, _, _ in cases], [env | extra for _, extra, _ in cases], tmp_path)
    for (args, _, expected), result in zip(cases, results, strict=True):
        assert result.returncode != 0, (args, result.stdout)
        assert expected in _one_line(result.stderr), (args, result.stderr)


def test_bad_values_get_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    _refused_in_one_line(BAD_VALUES, tmp_path)


@pytest.mark.slow
def test_every_command_refuses_a_bad_value_in_one_line(tmp_path: Path) -> None:
    _refused_in_one_line(MORE_BAD_VALUES, tmp_path)
