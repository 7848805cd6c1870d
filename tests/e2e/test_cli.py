"""The ``credit-gateway`` command as a user runs it: real processes, a real server, the README's own commands."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLI = [str(BIN / "credit-gateway")]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env["CREDIT_GATEWAY_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    return env | extra


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[list[str]]:
    """A ``credit-gateway`` server process, yielded once it says it listens; its log lines are collected."""
    proc = subprocess.Popen([*CLI, *args], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # blocks until the server writes; no polling
        seen.append(line)
        if "Uvicorn running on" in line:
            break
    else:
        proc.wait(timeout=30)
        proc.stderr.close()
        pytest.fail("exited before listening:\n" + "".join(seen))
    drain = threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True)  # a full pipe would block it
    drain.start()
    try:
        yield seen
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        drain.join(timeout=10)
        proc.stderr.close()
    assert not any("Traceback" in line for line in seen), "".join(seen)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(port))
    with running(["serve"], env, tmp_path):
        yield f"http://127.0.0.1:{port}", env


def test_help_explains_each_command(tmp_path: Path) -> None:
    top = run(["--help"], env_for(tmp_path), tmp_path)
    assert top.returncode == 0
    for command in ("serve", "migrate", "keys"):
        assert command in top.stdout
    create = run(["keys", "create", "--help"], env_for(tmp_path), tmp_path)
    assert "--role" in create.stdout and "--kinds" in create.stdout and "source system" in create.stdout


def test_migrate_and_keys(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    migrated = run(["migrate"], env, tmp_path)
    assert migrated.returncode == 0 and "schema revision" in migrated.stdout
    created = run(
        ["keys", "create", "--name", "approval-system", "--role", "source", "--kinds", "licences,penalties"],
        env,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"cgk_[A-Za-z0-9_-]{43}", key)
    listed = run(["keys", "list"], env, tmp_path)
    assert "approval-system" in listed.stdout and "licences,penalties" in listed.stdout and key not in listed.stdout
    assert key not in (tmp_path / "cli.db").read_bytes().decode("latin-1")  # only the digest is stored
    prefix = key[:10]
    assert run(["keys", "revoke", prefix], env, tmp_path).returncode == 0
    again = run(["keys", "revoke", prefix], env, tmp_path)
    assert again.returncode == 1 and "no active key" in again.stderr


def test_bad_input_gets_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    bad_role = run(["keys", "create", "--name", "x", "--role", "admin"], env, tmp_path)
    assert bad_role.returncode == 1 and "--role must be source or operator" in bad_role.stderr
    bad_kind = run(["keys", "create", "--name", "x", "--role", "source", "--kinds", "licences,permits"], env, tmp_path)
    assert bad_kind.returncode == 1 and "--kinds takes" in bad_kind.stderr
    unreachable = run(["migrate"], env | {"CREDIT_GATEWAY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, tmp_path)
    assert unreachable.returncode == 1 and "database cannot be reached" in unreachable.stderr
    bad_config = run(["migrate"], env | {"CREDIT_GATEWAY_PORT": "eighty"}, tmp_path)
    assert bad_config.returncode == 2 and "configuration error" in bad_config.stderr
    for result in (bad_role, bad_kind, unreachable, bad_config):
        assert "Traceback" not in result.stderr


def _readme_record() -> dict[str, object]:
    """The example licence of the README's own curl command, with its dates as the shell would fill them in."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    block = _readme_block("Try it")
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    until = today + dt.timedelta(days=364)  # any valid end will do here
    body = block.split("-d '{", 1)[1].rsplit("'", 1)[0]
    body = body.replace("'\"$TODAY\"'", today.isoformat()).replace("'\"$UNTIL\"'", until.isoformat())
    return json.loads("{" + body)  # type: ignore[no-any-return]


def _readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_example_works_as_written(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = served
    block = _readme_block("Try it")
    script = block.replace(".venv/bin/", f"{BIN}/").replace("http://127.0.0.1:8600", base)
    assert script.count(f"{BIN}/") == 1 and script.count(base) == 1  # only the paths were adapted
    first = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert (body["source_id"], body["version"], body["status"]) == ("XK-2026-000123", 1, "created")
    assert [d["target"] for d in body["deliveries"]] == ["national", "provincial", "municipal", "portal"]
    again = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert json.loads(again.stdout)["status"] == "unchanged"
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"


def test_readme_names_every_setting() -> None:
    from gateway.settings import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`{name.upper()}`" in readme or f"`{name.upper()}__" in readme, f"README misses {name}"


def test_docker_files_use_real_commands_and_settings() -> None:
    from gateway.settings import Settings

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text(encoding="utf-8"))
    assert {"db", "gateway", "sandbox"} <= set(compose["services"])  # the rest: tests/unit/test_docker.py
    gateway = compose["services"]["gateway"]
    assert gateway["command"][0] == "serve"
    settings = Settings.model_fields
    for variable in gateway["environment"]:
        name = variable.removeprefix("CREDIT_GATEWAY_").lower().split("__")[0]
        assert name in settings, variable
    assert "postgresql+psycopg://" in gateway["environment"]["CREDIT_GATEWAY_DATABASE_URL"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    for package in ("gateway", "schemas", "outbox", "adapters"):
        assert f"COPY {package} {package}" in dockerfile
    assert 'ENTRYPOINT ["credit-gateway"]' in dockerfile and "USER gateway" in dockerfile


def test_sandbox_command_takes_faults_from_a_file(tmp_path: Path) -> None:
    port = free_port()
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"national": {"throttle_rate": 1.0, "retry_after_seconds": 9}}), encoding="utf-8")
    with running(["sandbox", "--port", str(port), "--faults", str(faults)], env_for(tmp_path), tmp_path):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/_admin/national/faults").json()["retry_after_seconds"] == 9
        assert httpx.get(f"{base}/_admin/portal/faults").json()["throttle_rate"] == 0
        assert httpx.get(f"{base}/_admin/national/stats").json()["received_items"] == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"national": {"throttle_rate": 7}}', encoding="utf-8")
    refused = run(["sandbox", "--faults", str(bad)], env_for(tmp_path), tmp_path)
    assert refused.returncode == 1 and "throttle_rate" in refused.stderr and "Traceback" not in refused.stderr


def test_serve_with_sandbox_mounts_the_platforms_and_delivers_to_them(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(port))
    assert run(["migrate"], env, tmp_path).returncode == 0  # only serve and migrate make a database
    key = run(["keys", "create", "--name", "approval-system", "--role", "source"], env, tmp_path).stdout.split()[-1]
    with running(["serve", "--sandbox"], env, tmp_path):
        base = f"http://127.0.0.1:{port}"
        posted = httpx.post(
            f"{base}/api/v1/licences", json=_readme_record(), headers={"Authorization": f"Bearer {key}"}
        )
        assert posted.status_code == 201
        for target in ("national", "provincial", "municipal", "portal"):  # the demo publishes everywhere
            held = httpx.get(f"{base}/sandbox/_admin/{target}/wait", params={"public": 1, "timeout": 10}, timeout=15)
            assert held.status_code == 200, (target, held.json())
        token = httpx.post(
            f"{base}/sandbox/municipal/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-municipal",
                "client_secret": "demo-municipal-secret",
            },
        )
        assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
        assert httpx.get(f"{base}/readyz").json()["status"] == "ready"


def test_operator_commands(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    paused = run(["targets", "pause", "national", "--reason", "平台升级"], env, tmp_path)
    assert paused.returncode == 0 and "national paused" in paused.stdout
    status = run(["targets", "status"], env, tmp_path)
    row = next(line for line in status.stdout.splitlines() if "national" in line)
    assert "yes" in row.split("national", 1)[1].split("│")[2]  # the paused column
    assert run(["targets", "resume", "national"], env, tmp_path).returncode == 0
    dead = run(["deliveries", "dead", "--target", "national"], env, tmp_path)
    assert dead.returncode == 0 and "0 of 0 dead letters" in dead.stderr
    replay = run(["targets", "replay", "municipal", "--since", "2026-01-01"], env, tmp_path)
    assert replay.returncode == 0 and "0 record(s) would be sent again to municipal" in replay.stderr
    unknown = run(["targets", "pause", "weibo"], env, tmp_path)
    assert unknown.returncode == 1 and "not a target" in unknown.stderr
    bad_day = run(["targets", "replay", "national", "--since", "yesterday"], env, tmp_path)
    assert bad_day.returncode == 2 and "YYYY-MM-DD" in bad_day.stderr
    for result in (paused, status, dead, replay, unknown, bad_day):
        assert "Traceback" not in result.stderr


def test_worker_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = run(["worker"], env_for(tmp_path), tmp_path)
    assert result.returncode == 1 and "credit-gateway migrate" in result.stderr


def test_report_expire_and_at_risk_commands(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    import openpyxl

    from tests.factories import licence, penalty

    base, env = served
    key = run(["keys", "create", "--name", "approval-system", "--role", "source"], env, tmp_path).stdout.split()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    for n in range(3):
        data = licence(f"CLI-{n}", decision_date="2026-10-08", valid_from="2026-10-08")
        assert httpx.post(f"{base}/api/v1/licences", json=data, headers=headers).status_code == 201
    old = penalty("CLI-P", decision_date="2026-01-05", valid_until="2026-01-12", publish_until="2026-06-30")
    assert httpx.post(f"{base}/api/v1/penalties", json=old, headers=headers).status_code == 201

    out = tmp_path / "oct.xlsx"
    made = run(
        ["report", "--period", "2026-10", "--format", "xlsx", "-o", str(out), "--as-of", "2026-11-25"], env, tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(out) and "公示率 0.00%" in made.stderr and "overdue 12" in made.stderr
    book = openpyxl.load_workbook(out)
    totals = {r[0]: r for r in book["按科室"].iter_rows(min_row=2, values_only=True) if r[1] == "合计"}
    assert totals["行政审批科"][2:7] == (3, 12, 0, 0, 12)  # 3 records, 12 deliveries: all overdue
    listed = httpx.get(f"{base}/api/v1/reports", headers=headers)
    assert listed.status_code == 403  # a source key may not read reports

    html_out = tmp_path / "oct.html"
    assert (
        run(["report", "--period", "2026-10", "-f", "html", "-o", str(html_out), "--no-keep"], env, tmp_path).returncode
        == 0
    )
    assert "<svg" in html_out.read_text(encoding="utf-8")

    bad = run(["report", "--period", "2026-13", "-f", "xlsx"], env, tmp_path)
    assert bad.returncode == 2 and "is not a month" in bad.stderr  # a bad option value is a usage error
    wrong = run(["report", "--period", "2026-10", "-f", "pdf"], env, tmp_path)
    assert wrong.returncode == 2 and "'--format': must be one or more of" in wrong.stderr

    expired = run(["expire"], env, tmp_path)
    assert expired.returncode == 0 and "CLI-P" in expired.stdout and "公示期满 2026-06-30" in expired.stdout
    view = httpx.get(f"{base}/api/v1/penalties/CLI-P", headers=headers).json()
    assert view["withdrawn"]["reason"] == "period_ended"
    assert run(["expire"], env, tmp_path).stdout == ""  # nothing left to withdraw

    # --workdays 0 (due today or overdue) needs no calendar lookup ahead, so this holds on any day the suite
    # runs; the working-day horizon itself is tested against a manual clock in tests/contract.
    risky = run(["deliveries", "at-risk", "--workdays", "0", "--limit", "5"], env, tmp_path)
    assert risky.returncode == 0 and "5 at risk" in risky.stderr and "overdue" in risky.stdout
    for result in (made, bad, wrong, expired, risky):
        assert "Traceback" not in result.stderr


def test_report_stores_once_writes_each_format_and_mails_now(tmp_path: Path) -> None:
    import sqlite3

    import docx
    import openpyxl

    from tests.smtp import smtp_server

    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0

    def stored() -> int:
        with sqlite3.connect(tmp_path / "cli.db") as db:
            return int(db.execute("SELECT count(*) FROM report_run").fetchone()[0])

    out = tmp_path / "out" / "oct.xlsx"
    out.parent.mkdir()
    made = run(["report", "--period", "2026-10", "-f", "xlsx,html,docx", "-o", str(out)], env, tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.split() == [str(out.with_suffix(s)) for s in (".xlsx", ".html", ".docx")]
    assert stored() == 1  # one report, three files
    assert openpyxl.load_workbook(out)["汇总"]["A1"].value == "维度"
    assert "信用信息公示情况通报" in [p.text for p in docx.Document(str(out.with_suffix(".docx"))).paragraphs]
    assert run(["report", "--period", "2026-10", "-f", "json", "--no-store"], env, tmp_path).returncode == 0
    assert stored() == 1

    no_server = run(["report", "--period", "2026-10", "--email", "leader@example.org"], env, tmp_path)
    assert no_server.returncode == 1 and "CREDIT_GATEWAY_SMTP__HOST" in no_server.stderr
    bad = run(["report", "--period", "2026-10", "--email", "leader@example.org,nobody"], env, tmp_path)
    assert bad.returncode == 1 and "address 2 ('nobody')" in bad.stderr

    with smtp_server() as inbox:
        mail_env = env | {
            "CREDIT_GATEWAY_SMTP__HOST": inbox.host,
            "CREDIT_GATEWAY_SMTP__PORT": str(inbox.port),
            "CREDIT_GATEWAY_SMTP__FROM": "gongshi@example.org",
        }
        to = "leader@example.org,kaohe@example.org"
        sent = run(["report", "--period", "2026-10", "--email", to], mail_env, tmp_path)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout == "" and "leader@example.org: sent" in sent.stderr
        assert len(inbox.messages) == 2
        assert len(list(inbox.to("kaohe@example.org")[0].iter_attachments())) == 3
        again = run(["report", "--period", "2026-10", "--email", "leader@example.org"], mail_env, tmp_path)
        assert again.returncode == 0 and "already sent the 2026-10 report; --resend" in again.stderr
        assert len(inbox.messages) == 2
        resent = run(["report", "--period", "2026-10", "--email", "leader@example.org", "--resend"], mail_env, tmp_path)
        assert resent.returncode == 0 and len(inbox.to("leader@example.org")) == 2
        inbox.accept.clear()
        refused = run(["report", "--period", "2026-11", "--email", "leader@example.org"], mail_env, tmp_path)
        assert refused.returncode == 1 and "not sent yet" in refused.stderr and "451" in refused.stderr
    for result in (made, no_server, bad, sent, again, resent, refused):
        assert "Traceback" not in result.stderr
