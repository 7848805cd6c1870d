"""Import of the archive (``Importer``, what ``credit-gateway import`` runs) on SQLite and PostgreSQL.

The 10,000-row case runs on SQLite; on PostgreSQL the same file layout with 2,000 rows (8 bad) keeps the run
time reasonable on a shared machine: the code path is the same, only the count differs.
"""

from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from gateway.archive.importer import Importer, Outcome
from gateway.clock import ManualClock
from gateway.housekeeping import Housekeeping
from gateway.settings import Settings
from outbox import tables
from outbox.store import Store
from schemas import deadlines
from schemas.enums import Kind
from schemas.periods import parse_period
from tests import archive

NOW = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)  # 10:00 in Huaihua


def rows_for(db_url: str) -> int:
    return 10_000 if db_url.startswith("sqlite") else 2_000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, Path]]:
    """The archive as XLSX and as a GB18030 CSV, for each size, written once per module."""
    made = {}
    for n in (10_000, 2_000):
        folder = tmp_path_factory.mktemp(f"archive{n}")
        made[n] = (archive.write_xlsx(folder / "许可.xlsx", n), archive.write_csv(folder / "许可.csv", n))
    return made


def run(store: Store, path: Path, source: str, **options: Any) -> Outcome:
    return Importer(store, ManualClock(NOW)).run(path, kind=Kind.LICENCE, source_system=source, **options)


def expected_reasons(n: int) -> dict[str, str]:
    """业务编号 of each bad row → the rule its 错误原因 must name."""
    found = {}
    for i in archive.bad_rows(n):
        _, value, rule = archive.fault_of(i)
        found[f"XK-IMP-{(i - 1 if value == 'duplicate' else i):06d}"] = rule
    return found


def read_errors(path: Path) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(path, read_only=True)
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    book.close()
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_xlsx_archive_is_imported_once_and_its_bad_rows_explained(
    store: Store, db_url: str, files: dict[int, tuple[Path, Path]], tmp_path: Path, settings: Settings
) -> None:
    n = rows_for(db_url)
    xlsx, _ = files[n]
    bad = len(archive.bad_rows(n))
    if n == 10_000:
        assert bad == 37  # the case: 10,000 rows, 37 bad
    errors_out = tmp_path / "errors.xlsx"
    first = run(store, xlsx, "archive", errors_out=errors_out)
    assert (first.rows, first.imported, first.unchanged, first.rejected) == (n, n - bad, 0, bad)
    assert first.summary() == f"imported {n - bad}, unchanged 0, rejected {bad}"
    assert first.errors_file == errors_out and first.unknown_columns == ()

    errors = read_errors(errors_out)
    assert list(errors[0]) == [*archive.HEADERS, "错误原因"]  # the same columns plus 错误原因
    expected = expected_reasons(n)
    duplicates = {k for k, rule in expected.items() if rule == "duplicate_source_id"}
    assert sorted(e["业务编号"] for e in errors) == sorted(expected)
    for e in errors:
        rule = expected[e["业务编号"]]
        assert f": {rule}: " in e["错误原因"], e["错误原因"]
        assert e["错误原因"].startswith("第") and "行: " in e["错误原因"]
    uscc = next(e for e in errors if expected[e["业务编号"]] == "invalid_uscc")
    assert "行政相对人代码_1(统一社会信用代码) (counterpart.uscc): invalid_uscc" in uscc["错误原因"]
    missing = next(e for e in errors if expected[e["业务编号"]] == "required")
    assert "许可内容 (content): required" in missing["错误原因"]
    assert {e["业务编号"] for e in errors if "duplicate_source_id" in e["错误原因"]} == duplicates

    # Stored as the source system's records, marked as imported, with deliveries queued like any other.
    counts = store.db.read(
        lambda c: c.execute(
            sa.select(tables.record.c.source_system, tables.record.c.origin, sa.func.count()).group_by(
                tables.record.c.source_system, tables.record.c.origin
            )
        ).all()
    )
    assert counts == [("archive", "import", n - bad)]
    pending = store.db.read(
        lambda c: c.execute(
            sa.select(sa.func.count()).select_from(tables.delivery).where(tables.delivery.c.state == "pending")
        ).scalar_one()
    )
    assert pending == 4 * (n - bad)
    # Deadlines count from each record's own decision date: row 1 was decided 2025-01-03.
    rules = deadlines.from_settings(settings.deadlines)
    view = store.record_view(Kind.LICENCE, "XK-IMP-000001", "archive")
    assert view["decided_on"] == "2025-01-03" and view["origin"] == "import"
    dues = {d["target"]: d["due_date"] for d in view["deliveries"]}
    national = rules.due("national", Kind.LICENCE, dt.date(2025, 1, 3))
    assert national is not None and dues["national"] == national.isoformat()
    assert dues["portal"] == "2025-01-10"

    # A second run of the same file changes nothing and rejects the same rows.
    again_out = tmp_path / "again.xlsx"
    second = run(store, xlsx, "archive", errors_out=again_out)
    assert (second.imported, second.unchanged, second.rejected) == (0, n - bad, bad)
    assert sorted(e["业务编号"] for e in read_errors(again_out)) == sorted(expected)
    versions = store.db.read(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(tables.record_version)).scalar_one()
    )
    assert versions == n - bad

    # The report says how many came by import: the rows decided in January 2025.
    housekeeping = Housekeeping(settings, store, ManualClock(NOW), rules, dict)
    report = housekeeping.compute_report(parse_period("2025-01"))
    bad_set = set(archive.bad_rows(n))
    january = sum(1 for i in range(n) if i not in bad_set and archive.decided_on(i) < dt.date(2025, 2, 1))
    assert report["imported"] == january > 0
    finished = store.db.read(
        lambda c: (
            c.execute(sa.select(tables.audit_event.c.detail).where(tables.audit_event.c.action == "import.finished"))
            .scalars()
            .all()
        )
    )
    assert [(d["imported"], d["rejected"]) for d in finished] == [(n - bad, bad), (0, bad)]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_gb18030_csv_of_the_same_rows_gives_the_same_result(
    store: Store, db_url: str, files: dict[int, tuple[Path, Path]], tmp_path: Path
) -> None:
    n = rows_for(db_url)
    _, gb_csv = files[n]
    raw = gb_csv.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GB18030, as Excel in China writes it
    bad = len(archive.bad_rows(n))

    dry = run(store, gb_csv, "archive-csv", dry_run=True, errors_out=tmp_path / "dry.csv")
    assert (dry.imported, dry.unchanged, dry.rejected) == (n - bad, 0, bad)
    assert dry.summary() == f"would import {n - bad}, unchanged 0, rejected {bad}"
    stored = store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(tables.record)).scalar_one())
    assert stored == 0  # the dry run stored nothing

    errors_out = tmp_path / "errors.csv"
    first = run(store, gb_csv, "archive-csv", errors_out=errors_out)
    assert (first.encoding, first.imported, first.unchanged, first.rejected) == ("gb18030", n - bad, 0, bad)
    text = errors_out.read_bytes().decode("gb18030")  # the errors file in the input's encoding
    lines = text.splitlines()
    assert lines[0] == ",".join([*archive.HEADERS, "错误原因"])
    assert len(lines) == 1 + bad
    assert sorted(line.split(",", 1)[0] for line in lines[1:]) == sorted(expected_reasons(n))
    second = run(store, gb_csv, "archive-csv", errors_out=errors_out)
    assert (second.imported, second.unchanged, second.rejected) == (0, n - bad, bad)
    # The dry run now knows everything is there.
    assert run(store, gb_csv, "archive-csv", dry_run=True, errors_out=errors_out).unchanged == n - bad


class Refused(Exception):
    """What the stand-in for a failing database raises."""


@pytest.mark.parametrize("stop", ["store", "operator"])
def test_an_import_stopped_half_way_keeps_its_finished_batches(
    store: Store, files: dict[int, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """The database failing on the second batch, or Ctrl-C in the progress callback once the first is stored: the
    error reaches the caller and the first batch stays stored (README: an interrupted import kept its finished
    batches)."""
    _, gb_csv = files[2_000]
    calls: list[int] = []
    ingest = store.ingest

    def failing_second(**kwargs: Any) -> Any:
        calls.append(len(kwargs["items"]))
        if len(calls) == 2:
            raise Refused("the database went away")
        return ingest(**kwargs)

    def interrupt(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 2:  # the first batch of 500 was filled (one row of the first 500 is bad) and stored
            raise KeyboardInterrupt

    importer = Importer(store, ManualClock(NOW), batch_size=500)
    if stop == "store":
        monkeypatch.setattr(store, "ingest", failing_second)
        with pytest.raises(Refused):
            importer.run(gb_csv, kind=Kind.LICENCE, source_system="half", errors_out=tmp_path / "e.csv")
    else:
        with pytest.raises(KeyboardInterrupt):
            importer.run(
                gb_csv, kind=Kind.LICENCE, source_system="half", errors_out=tmp_path / "e.csv", progress=interrupt
            )
    stored = store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(tables.record)).scalar_one())
    assert stored == 500
    assert gc.get_freeze_count() == 0  # the collector's objects thawed, however the import ended


def test_the_objects_from_before_the_import_are_frozen_while_it_runs_and_thawed_after(
    store: Store, files: dict[int, tuple[Path, Path]], tmp_path: Path
) -> None:
    _, gb_csv = files[2_000]
    frozen: list[int] = []
    assert gc.get_freeze_count() == 0
    outcome = run(
        store, gb_csv, "frozen", errors_out=tmp_path / "e.csv", progress=lambda _: frozen.append(gc.get_freeze_count())
    )
    assert outcome.imported == 2_000 - len(archive.bad_rows(2_000))
    assert len(frozen) == 4 and min(frozen) > 10_000  # the modules, the store's engine...
    assert gc.get_freeze_count() == 0
