"""``credit-gateway checks`` as an operator runs it: real processes, the national subject query on loopback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapters.sandbox.app import create_sandbox
from tests import live
from tests.e2e.test_cli import env_for, run
from tests.factories import make_resident_id, make_uscc

SUBJECT = make_uscc("91431200MA4L7Q3MX")


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


def test_checks_run_list_and_keys(sandbox: str, tmp_path: Path) -> None:
    env = env_for(tmp_path, CREDIT_GATEWAY_TARGETS__NATIONAL__BASE_URL=f"{sandbox}/national")
    assert run(["migrate"], env, tmp_path).returncode == 0
    seeded = {
        "code": SUBJECT,
        "name": "外地建设有限公司",
        "lists": [{"list": "黑名单", "list_name": "失信被执行人", "unit": "某市中级人民法院", "since": "2026/01/05"}],
    }
    httpx.post(f"{sandbox}/_admin/national/subjects", json=seeded).raise_for_status()

    done = run(
        [
            "--actor",
            "张三",
            "checks",
            "run",
            "--uscc",
            SUBJECT.lower(),
            "--matter",
            "施工许可",
            "--department",
            "行政审批科",
        ],
        env,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["advice"] == "restrict" and answer["sources"] == ["local", "national"]
    assert answer["asked_by"] == "张三" and answer["matter_type"] == "licence"  # the CLI's --actor
    assert "restrict" in done.stderr and "失信被执行人" in done.stderr

    person = make_resident_id()
    mine = run(
        ["checks", "run", "--id-type", "resident_id", "--id-number", person, "--matter", "补贴", "--type", "subsidy",
         "--department", "房监科"],
        env,
        tmp_path,
    )  # fmt: skip
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout)["advice"] == "no_record"

    month = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    listed = run(["checks", "list", "--period", month], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "restrict" in listed.stdout and "2 check(s)" in listed.stderr
    assert person not in listed.stdout and person[:4] + "**********" + person[-4:] in listed.stdout
    only = run(["checks", "list", "--period", month, "--department", "房监科"], env, tmp_path)
    assert "1 check(s)" in only.stderr

    key = run(
        ["keys", "create", "--name", "approval-office", "--role", "source", "--kinds", "credit-checks"], env, tmp_path
    )
    assert key.returncode == 0 and "credit-checks" in key.stderr
    kept = run(["checks", "purge"], env, tmp_path)
    assert kept.returncode == 0 and "every check is kept" in kept.stdout


def test_checks_run_refuses_a_name_only_subject(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    refused = run(["checks", "run", "--matter", "施工许可", "--department", "行政审批科"], env, tmp_path)
    assert refused.returncode == 1 and "a name alone is refused" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr
    bad = run(["checks", "list", "--period", "November"], env, tmp_path)
    assert bad.returncode == 2 and "is not a month" in bad.stderr  # a bad option value: a usage error
