"""``credit-gateway import`` as an operator runs it: a real process on SQLite and PostgreSQL, its exit status,
its progress on stderr, its last line, the errors file beside the input."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import openpyxl

from tests import archive

CLI = [str(Path(sys.executable).parent / "credit-gateway")]
ROWS = 300  # rows 13 and 283 are bad


def run(args: list[str], db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env["CREDIT_GATEWAY_DATABASE_URL"] = db_url
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_dry_run_then_for_real_then_again(db_url: str, tmp_path: Path) -> None:
    xlsx = archive.write_xlsx(tmp_path / "许可2025.xlsx", ROWS)
    bad = len(archive.bad_rows(ROWS))
    base = ["import", str(xlsx), "--kind", "licences", "--source-system", "old-approval"]

    dry = run([*base, "--dry-run"], db_url, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip().splitlines()[-1] == f"would import {ROWS - bad}, unchanged 0, rejected {bad}"
    assert "dry run: nothing was stored" in dry.stderr

    done = run(base, db_url, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"imported {ROWS - bad}, unchanged 0, rejected {bad}"
    errors = tmp_path / "许可2025.errors.xlsx"  # beside the input, in its format
    assert str(errors) in done.stderr.replace("\n", "")
    assert "Context impl" not in done.stderr + dry.stderr  # checking the schema says nothing (alembic at INFO)
    book = openpyxl.load_workbook(errors, read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert rows[0][-1] == "错误原因" and len(rows) == 1 + bad

    again = run(base, db_url, tmp_path)
    assert again.stdout.strip().splitlines()[-1] == f"imported 0, unchanged {ROWS - bad}, rejected {bad}"


def test_a_file_without_the_template_header_is_refused_whole(db_url: str, tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    with odd.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["名称", "日期"], ["某公司", "2026/01/05"]])
    assert run(["migrate"], db_url, tmp_path).returncode == 0
    refused = run(["import", str(odd), "--kind", "licences", "--source-system", "x"], db_url, tmp_path)
    assert refused.returncode == 1
    assert "业务编号" in refused.stderr and "Traceback" not in refused.stderr
    wrong_kind = run(["import", str(odd), "--kind", "permits", "--source-system", "x"], db_url, tmp_path)
    assert wrong_kind.returncode == 1 and "--kind takes licences" in wrong_kind.stderr
