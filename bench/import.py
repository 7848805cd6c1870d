"""Archive import throughput beside the store's batch-ingest rate, measured in the same run.

For each database (SQLite file, PostgreSQL) this script writes one archive in the national licence template
(``tests.archive``: N rows, a few of them bad) as XLSX and as a GB18030 CSV, then, each phase in a fresh child
process on the same database so that each peak RSS is its own:

1. ``batch``: the store's batch ingest of the same rows, bypassing the file: the rows are mapped and validated
   before the clock starts, then stored 500 a transaction (``Store.ingest``), the ceiling an import can reach;
2. ``xlsx`` and ``csv``: ``Importer.run`` (what ``credit-gateway import`` calls) on each file, timed whole:
   reading, mapping, validation, storing, the errors file.

It prints rows/s for each (best of ``--repeat`` alternating runs), the import's share of the batch-ingest rate
(stored rows/s; goal: at least 70 %), the CPU seconds each spent and each child's peak RSS (VmHWM; the import
runs in that one process). Each run writes under its own source system, so every run stores all its rows. The
load average is printed too: on a shared machine wall-clock shares follow CPU contention, the CPU column does not.

Usage: python bench/import.py [--rows 10000] [--only sqlite|postgres] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import peak_rss_mb  # noqa: E402
from tests import archive  # noqa: E402


def _store(db_url: str) -> Any:
    from gateway.compose import make_store
    from gateway.settings import Settings

    return make_store(Settings(database_url=db_url))


def _cpu() -> float:
    """CPU seconds of this process, all its threads."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def phase_batch(db_url: str, csv_path: Path, source: str) -> dict[str, Any]:
    """The same rows through the batch ingest, without the file: mapped and validated before timing."""
    from gateway.archive import columns, files
    from gateway.clock import SystemClock, local_date
    from outbox.ingest import Actor, Incoming
    from schemas.enums import Kind
    from schemas.validation import Canonical, validate

    store = _store(db_url)
    today = local_date(SystemClock())
    sheet = files.open_sheet(csv_path)
    layout = columns.layout(Kind.LICENCE, sheet.headers)
    items: dict[str, Incoming] = {}
    for _, values in sheet.rows:
        data = columns.to_record(Kind.LICENCE, layout, values)
        result = validate(Kind.LICENCE, data, today=today)
        if isinstance(result, Canonical) and result.source_id not in items:
            items[result.source_id] = Incoming(result, data)
    sheet.close()
    rows = list(items.values())
    actor, start, cpu = Actor("bench", "operator"), time.perf_counter(), _cpu()
    for i in range(0, len(rows), 500):
        store.ingest(
            source_system=source,
            kind=Kind.LICENCE,
            items=rows[i : i + 500],
            actor=actor,
            now=dt.datetime.now(dt.UTC),
            origin="import",
        )
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    store.db.dispose()
    return {"rows": len(rows), "stored": len(rows), "seconds": seconds, "cpu": cpu}


def phase_import(db_url: str, path: Path, source: str) -> dict[str, Any]:
    from gateway.archive.importer import Importer
    from gateway.clock import SystemClock
    from schemas.enums import Kind

    store = _store(db_url)
    start, cpu = time.perf_counter(), _cpu()
    outcome = Importer(store, SystemClock()).run(
        path, kind=Kind.LICENCE, source_system=source, errors_out=path.with_name(f"{source}.errors{path.suffix}")
    )
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    store.db.dispose()
    return {
        "rows": outcome.rows,
        "stored": outcome.imported,
        "rejected": outcome.rejected,
        "seconds": seconds,
        "cpu": cpu,
    }


def child(args: argparse.Namespace) -> None:
    if args.phase == "batch":
        result = phase_batch(args.db, Path(args.file), args.source)
    else:
        result = phase_import(args.db, Path(args.file), args.source)
    result["rss"] = peak_rss_mb(os.getpid())
    print(json.dumps(result))


def run_phase(phase: str, db_url: str, path: Path, source: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", phase, "--db", db_url, "--file", str(path), "--source", source],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def backends(only: str | None, admin: str, workdir: Path) -> list[tuple[str, str, Callable[[], None]]]:
    found: list[tuple[str, str, Callable[[], None]]] = []
    if only in (None, "sqlite"):
        found.append(("sqlite", f"sqlite:///{workdir / 'import.db'}", lambda: None))
    if only in (None, "postgres"):
        name = f"cgbench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

        found.append(("postgres", admin.rsplit("/", 1)[0] + f"/{name}", drop))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--pg", default=os.environ.get("CREDIT_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--child", choices=["batch", "xlsx", "csv"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each phase, alternating; the best counts")
    args = parser.parse_args()
    if args.child:
        args.phase = args.child
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        xlsx = archive.write_xlsx(workdir / "archive.xlsx", args.rows)
        csv_file = archive.write_csv(workdir / "archive.csv", args.rows)
        print(f"{args.rows} rows ({len(archive.bad_rows(args.rows))} bad) as XLSX and GB18030 CSV")
        print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(
            f"{'db':10} {'phase':6} {'rows/s':>8} {'share':>6} {'stored':>7} {'seconds':>8} {'CPU s':>6} "
            f"{'peak RSS':>9}"
        )
        for label, url, drop in backends(args.only, args.pg, workdir):
            try:
                from gateway.compose import make_store
                from gateway.settings import Settings

                store = make_store(Settings(database_url=url))
                store.migrate()
                store.db.dispose()
                best: dict[str, dict[str, Any]] = {}
                for attempt in range(args.repeat):  # alternate, so load changes hit every phase alike
                    for phase, path in (("batch", csv_file), ("xlsx", xlsx), ("csv", csv_file)):
                        got = run_phase(phase, url, path, f"bench-{phase}-{attempt}")
                        if phase not in best or got["seconds"] < best[phase]["seconds"]:
                            best[phase] = got
                base_rate = best["batch"]["stored"] / best["batch"]["seconds"]
                for phase in ("batch", "xlsx", "csv"):
                    got = best[phase]
                    rate = got["stored"] / got["seconds"]
                    print(
                        f"{label:10} {phase:6} {got['rows'] / got['seconds']:8.0f} {rate / base_rate:6.0%} "
                        f"{got['stored']:7d} {got['seconds']:8.2f} {got['cpu']:6.1f} {got['rss']:7.0f}MB"
                    )
            finally:
                drop()
        print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("share: stored rows/s of the import over the batch ingest's stored rows/s (goal ≥ 70%)")


if __name__ == "__main__":
    main()
