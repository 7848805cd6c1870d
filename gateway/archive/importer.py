"""Import of the archive: a template spreadsheet in, records stored as if their source system had posted them.

Each row is mapped (``columns``), validated by the API's own rules (``schemas.validation``, judged on today's
date in Huaihua) and stored through the store's batch ingest, with the source system named on the command line
as the owner and ``origin = import`` on the records it creates. So an imported record is delivered like any
other, its deadlines count from its own decision date (an old decision is simply late), and a re-run of the
same file finds every record unchanged. Rows that fail go to the errors file with their reasons; nothing about
them is stored. A dry run does everything but write: it reads the store to say what would happen.

Rows are read, mapped, validated and stored in turn, in this one thread. Checking 10,000 template rows costs some
0.3 s of CPU against about 2 s to store them, mostly waiting on the database, so overlapping the two looks
tempting, but: a reader process (used before) cost more in starting and pickling rows than the check itself (1.59
s against 0.62 s in process); a reader thread gains nothing, because the database driver gives up the GIL at every
socket wait, short ones included, and a busy thread then keeps it up to the 5 ms switch interval (a Python thread
spinning beside the batch ingest of 10,000 rows took it from 1.8 s to 4.8 s). Measured against this sequential
loop, a reader thread feeding a bounded queue came out even (CSV 2.32 s against 2.33 s, XLSX 2.43 s against 2.47
s, medians of 8 alternating runs on a loaded machine) for more code. What did pay was the garbage collector: see
``objects_so_far_frozen``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.archive import columns, files
from gateway.clock import Clock, local_date
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.validation import Canonical, validate

BATCH = 500
WITHDRAWN = FieldError("source_id", "record_withdrawn", "the record was withdrawn and takes no new content")


@dataclass(slots=True)
class Outcome:
    imported: int = 0  # created or updated (a new version)
    unchanged: int = 0
    rejected: int = 0
    rows: int = 0
    errors_file: Path | None = None
    unknown_columns: tuple[str, ...] = ()
    dry_run: bool = False
    encoding: str | None = None

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        return f"{verb} {self.imported}, unchanged {self.unchanged}, rejected {self.rejected}"


@dataclass(slots=True)
class _Row:
    number: int
    values: list[Any]
    incoming: Incoming


def _none(_: int | None) -> None:
    return None


@contextlib.contextmanager
def objects_so_far_frozen() -> Iterator[None]:
    """The garbage collector leaves the objects the process already had alone while an import runs.

    Why: each row's objects (some 30 that the collector tracks) live until its batch is stored, and their number
    sets off the collector's full passes, four per 10,000 rows, each walking every object the process held, some
    150,000 before the first row (modules, the store's engine): 0.3-0.4 s of CPU per 10,000 rows, a quarter of the
    import's. Frozen (``gc.freeze``), those are skipped; the rows' own objects are still
    collected. Thawed afterwards; a process that had frozen objects itself is left as it was (``gc.unfreeze``
    would thaw those too)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def default_errors_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.errors{path.suffix.lower()}")


@dataclass
class Importer:
    store: Store
    clock: Clock
    actor: Actor = field(default_factory=lambda: Actor("cli", "operator"))
    batch_size: int = BATCH

    def run(
        self,
        path: Path,
        *,
        kind: Kind,
        source_system: str,
        dry_run: bool = False,
        errors_out: Path | None = None,
        on_total: Callable[[int | None], None] = _none,
        progress: Callable[[int], None] = _none,
    ) -> Outcome:
        """Import ``path``; raises ``files.FileError`` or ``columns.HeaderError`` before storing anything when
        the file or its header row cannot be read. An error reading a later row (``files.FileError``) or storing a
        batch ends the run there: the batches stored before stay stored, and the errors file has the rows so far."""
        sheet = files.open_sheet(path)
        try:
            layout = columns.layout(kind, sheet.headers)
            outcome = Outcome(unknown_columns=layout.unknown, dry_run=dry_run, encoding=sheet.encoding)
            on_total(sheet.total)
            run = _Run(self, kind, source_system, layout, outcome, dry_run)
            errors_path = errors_out or default_errors_path(path)
            try:
                with objects_so_far_frozen():
                    run.pipeline(sheet, progress)
            finally:
                run.write_errors(sheet, errors_path)
            outcome.errors_file = errors_path if run.failures else None
        finally:
            sheet.close()
        if not dry_run:
            self.store.audit(
                self.actor,
                "import.finished",
                self.clock.now(),
                kind=kind,
                detail={
                    "file": path.name,
                    "source_system": source_system,
                    "rows": outcome.rows,
                    "imported": outcome.imported,
                    "unchanged": outcome.unchanged,
                    "rejected": outcome.rejected,
                },
            )
        return outcome


class _Run:
    """One pass over a file: the source_ids seen so far, the counts, the rejected rows."""

    def __init__(
        self, importer: Importer, kind: Kind, source_system: str, layout: columns.Layout, outcome: Outcome, dry: bool
    ) -> None:
        self.importer, self.kind, self.source_system = importer, kind, source_system
        self.layout, self.outcome, self.dry = layout, outcome, dry
        self.today: dt.date = local_date(importer.clock)
        self.seen: dict[str, tuple[str, int]] = {}  # source_id → (content hash, row number) of its first row
        self.failures: list[tuple[int, list[Any], str]] = []

    def pipeline(self, sheet: files.Sheet, progress: Callable[[int], None]) -> None:
        """Each row read, mapped and validated, checked against the file's earlier rows, and stored with its batch;
        ``progress`` told every batch-size rows read."""
        size, kind, layout, today = self.importer.batch_size, self.kind, self.layout, self.today
        batch: list[_Row] = []
        unreported = 0
        for number, values in sheet.rows:
            data = columns.to_record(kind, layout, values)
            found = self.row(number, values, data, validate(kind, data, today=today))
            if found is not None:
                batch.append(found)
                if len(batch) >= size:
                    self.store(batch)
                    batch = []
            self.outcome.rows += 1
            unreported += 1
            if unreported >= size:
                progress(unreported)
                unreported = 0
        self.store(batch)
        if unreported:
            progress(unreported)

    def row(
        self, number: int, values: list[Any], data: dict[str, Any], result: Canonical | list[FieldError]
    ) -> _Row | None:
        if not isinstance(result, Canonical):
            self.outcome.rejected += 1
            self.reject(number, values, result)
            return None
        sid, digest = result.source_id, result.content_hash
        first = self.seen.get(sid)
        if first is not None:
            if first[0] == digest:
                self.outcome.unchanged += 1  # the same record twice in the file
            else:
                message = f"{sid!r} is already at row {first[1]} with other content; keep one version per file"
                self.outcome.rejected += 1
                self.reject(number, values, [FieldError("source_id", "duplicate_source_id", message)])
            return None
        self.seen[sid] = (digest, number)
        return _Row(number, values, Incoming(result, data))

    def reject(self, number: int, values: list[Any], errors: Sequence[FieldError]) -> None:
        self.failures.append((number, values, self.reason(number, errors)))

    def reason(self, number: int, errors: Sequence[FieldError]) -> str:
        parts = []
        for e in errors:
            header = self.layout.header_of(e.field) if e.field else None
            where = f"{header} ({e.field})" if header else (e.field or "记录")
            parts.append(f"{where}: {e.code}: {e.message}")
        return f"第{number}行: " + "；".join(parts)

    # -- store side --------------------------------------------------------------------------------------

    def store(self, batch: list[_Row]) -> None:
        if not batch:
            return
        if self.dry:
            statuses = self._would_be(batch)
        else:
            stored = self.importer.store.ingest(
                source_system=self.source_system,
                kind=self.kind,
                items=[r.incoming for r in batch],
                actor=self.importer.actor,
                now=self.importer.clock.now(),
                origin="import",
            )
            statuses = [s.status for s in stored]
        for row, status in zip(batch, statuses, strict=True):
            if status in ("created", "updated"):
                self.outcome.imported += 1
            elif status == "unchanged":
                self.outcome.unchanged += 1
            else:
                self.outcome.rejected += 1
                self.reject(row.number, row.values, [WITHDRAWN])

    def _would_be(self, batch: Sequence[_Row]) -> list[str]:
        ids = [r.incoming.canonical.source_id for r in batch]
        known = self.importer.store.known_hashes(self.source_system, self.kind, ids)
        statuses = []
        for r in batch:
            found = known.get(r.incoming.canonical.source_id)
            if found is None:
                statuses.append("created")
            elif found[0] == r.incoming.canonical.content_hash:
                statuses.append("unchanged")
            else:
                statuses.append("withdrawn" if found[1] else "updated")
        return statuses

    def write_errors(self, sheet: files.Sheet, path: Path) -> None:
        if not self.failures:
            return
        # A corrected errors file may come back with its 错误原因 column: write that column once, fresh.
        keep = [i for i, h in enumerate(self.layout.headers) if columns.normalise_header(h) != columns.REASON]
        out = files.ErrorsFile(path, sheet, [self.layout.headers[i] for i in keep], columns.REASON)
        try:
            for _, values, reason in sorted(self.failures, key=lambda f: f[0]):
                out.add([values[i] if i < len(values) else None for i in keep], reason)
        finally:
            out.close()
