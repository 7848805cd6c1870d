"""Import of the archive: a template spreadsheet in, records stored as if their source system had posted them.

Each row is mapped (``columns``), validated by the API's own rules (``schemas.validation``, judged on today's
date in Huaihua) and stored through the store's batch ingest, with the source system named on the command line
as the owner and ``origin = import`` on the records it creates. So an imported record is delivered like any
other, its deadlines count from its own decision date (an old decision is simply late), and a re-run of the
same file finds every record unchanged. Rows that fail go to the errors file with their reasons; nothing about
them is stored. A dry run does everything but write: it reads the store to say what would happen.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.archive import columns, files, reader
from gateway.clock import Clock, local_date
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.validation import Canonical

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
        the file or its header row cannot be read. A reader process (``reader``) reads, maps and validates rows
        while this one stores the ones before."""
        sheet = files.open_sheet(path)
        try:
            layout = columns.layout(kind, sheet.headers)
            outcome = Outcome(unknown_columns=layout.unknown, dry_run=dry_run, encoding=sheet.encoding)
            on_total(sheet.total)
            run = _Run(self, kind, source_system, layout, outcome, dry_run)
            errors_path = errors_out or default_errors_path(path)
            try:
                run.pipeline(path, progress)
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

    def pipeline(self, path: Path, progress: Callable[[int], None]) -> None:
        """Rows arrive read, mapped and validated from the reader process; duplicates are caught and batches
        stored here."""
        size = self.importer.batch_size
        chunks = reader.checked_in_background(path, self.kind, self.today, size)
        with contextlib.closing(chunks):
            batch: list[_Row] = []
            for chunk in chunks:
                for checked in chunk:
                    self.outcome.rows += 1
                    found = self.row(checked)
                    if found is not None:
                        batch.append(found)
                    if len(batch) >= size:
                        self.store(batch)
                        batch = []
                progress(len(chunk))
            self.store(batch)

    def row(self, checked: reader.Checked) -> _Row | None:
        number, values, result = checked.number, checked.values, checked.result
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
        return _Row(number, values, Incoming(result, checked.data))

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
