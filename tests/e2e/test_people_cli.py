"""``credit-gateway users`` and ``credit-gateway audit`` as an operator runs them (real processes, SQLite file)."""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import CLI, env_for, free_port, run, running

PASSWORD = "长城 long enough pass"


def feed(args: list[str], stdin: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], input=stdin, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(300)  # some twenty processes: slow on a loaded machine, not stuck
def test_users_commands_and_their_audit_entries(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    made = feed(
        [
            "--actor",
            "局信用办-张三",
            "users",
            "create",
            "--name",
            "李四",
            "--role",
            "operator",
            "--department",
            "行政审批科",
            "--password-stdin",
        ],
        PASSWORD + "\n",
        env,
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created operator 李四"
    short = feed(
        ["users", "create", "--name", "王五", "--role", "viewer", "--password-stdin"], "short\n", env, tmp_path
    )
    assert short.returncode == 1 and "password: at least 12 characters (got 5)" in short.stderr
    no_stdin = run(["users", "create", "--name", "王五", "--role", "viewer"], env, tmp_path)
    assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr
    again = feed(["users", "create", "--name", "李四", "--role", "viewer", "--password-stdin"], PASSWORD, env, tmp_path)
    assert again.returncode == 1 and "exists already" in again.stderr

    listed = run(["users", "list"], env, tmp_path)
    assert listed.returncode == 0 and re.search(r"李四\s*│\s*operator\s*│\s*行政审批科", listed.stdout)
    reset = feed(["users", "reset-password", "李四", "--password-stdin"], "another long password", env, tmp_path)
    assert reset.returncode == 0 and "0 session(s) ended" in reset.stdout
    disabled = run(["users", "disable", "李四"], env, tmp_path)
    assert disabled.returncode == 0 and disabled.stdout.strip() == "disabled 李四; 0 session(s) ended"
    missing = run(["users", "disable", "nobody"], env, tmp_path)
    assert missing.returncode == 1 and "no person named 'nobody'" in missing.stderr

    requeue = run(["--actor", "值班员", "deliveries", "requeue", "1"], env, tmp_path)  # there is no delivery 1
    assert requeue.returncode == 1 and "no delivery with id 1; nothing requeued" in requeue.stderr
    key = run(["--actor", "值班员", "keys", "create", "--name", "approval-system", "--role", "source"], env, tmp_path)
    assert key.returncode == 0, key.stderr
    entries = run(["audit", "list", "--json"], env, tmp_path)
    found = [json.loads(line) for line in entries.stdout.splitlines()]
    assert [(e["action"], e["actor"], e["role"]) for e in found] == [
        ("key.create", "值班员", "cli"),
        ("person.disable", getpass.getuser(), "cli"),
        ("person.reset_password", getpass.getuser(), "cli"),
        ("person.create", "局信用办-张三", "cli"),
    ]
    by = run(["audit", "list", "--by", "局信用办-张三", "--since", "2000-01-01"], env, tmp_path)
    assert by.returncode == 0 and "person.create" in by.stdout and "person.disable" not in by.stdout
    family = run(["audit", "list", "--action", "person.", "--json"], env, tmp_path)
    assert len(family.stdout.splitlines()) == 3
    bad_since = run(["audit", "list", "--since", "yesterday"], env, tmp_path)
    assert bad_since.returncode == 2 and "--since" in bad_since.stderr
    for result in (made, short, no_stdin, again, listed, reset, disabled, missing, key, entries, by, family, bad_since):
        assert "Traceback" not in result.stderr
        assert PASSWORD not in result.stdout + result.stderr


def test_audit_verify_names_an_entry_changed_in_the_file(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    for target in ("national", "portal", "municipal"):
        assert run(["targets", "pause", target], env, tmp_path).returncode == 0
    intact = run(["audit", "verify"], env, tmp_path)
    assert intact.returncode == 0 and re.match(
        r"audit chain intact: 3 entries; head seq 3 sha256 [0-9a-f]{64}$", intact.stdout.strip()
    )
    with sqlite3.connect(tmp_path / "cli.db") as conn:  # someone with the file and an SQLite shell
        conn.execute("DROP TRIGGER audit_event_no_update")
        conn.execute("UPDATE audit_event SET actor = 'someone-else' WHERE seq = 2")
        victim = conn.execute("SELECT id FROM audit_event WHERE seq = 2").fetchone()[0]
    broken = run(["audit", "verify"], env, tmp_path)
    assert broken.returncode == 1
    assert f"audit chain broken: entry #{victim} (seq 2) was altered" in broken.stderr.replace("\n", " ")
    assert broken.stdout.startswith("altered\t")


@pytest.mark.timeout(300)  # two server starts on a loaded machine
def test_the_sandbox_demo_makes_an_admin_on_first_start_only(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from gateway.people import People
    from outbox.database import Database
    from outbox.people import PeopleStore

    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(free_port()))
    with running(["serve", "--sandbox"], env, tmp_path) as first:
        pass
    shown = [line for line in first if "demo console admin created" in line]
    assert len(shown) == 1
    password = re.search(r"password (\S+)", shown[0])
    assert password is not None
    db = Database(env["CREDIT_GATEWAY_DATABASE_URL"])
    try:
        signed = People(PeopleStore(db), SystemClock()).sign_in("admin", password.group(1))
        assert signed.session.person.role.may_administer
    finally:
        db.dispose()
    env["CREDIT_GATEWAY_PORT"] = str(free_port())
    with running(["serve", "--sandbox"], env, tmp_path) as second:
        pass
    assert not any("demo console admin" in line for line in second)
    assert not any(password.group(1) in line for line in second)
