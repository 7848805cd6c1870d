"""The reader side of an import: read, map and validate rows, in a process of its own.

``python -m gateway.archive.reader FILE KIND TODAY SIZE`` parses the sheet (``files``), maps each row
(``columns``) and validates it with the API's rules (``schemas.validation``, judged on ``TODAY``), and writes the
results to stdout as pickled chunks of ``Checked`` rows, then ``None``; on failure, the error as a string.

Why a process: reading, mapping and validating a row costs about as much interpreter time as storing it, and in
one process (threads included, because of the GIL) the two add up; in two processes they overlap, so an import
runs near the store's batch-ingest rate. Only the importing process, which started this one, reads the stream.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import pickle
import subprocess
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.archive import columns, files
from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.validation import Canonical, validate


@dataclass(frozen=True, slots=True)
class Checked:
    """One data row: where it was, what it held, the JSON values it maps to, and the validation's answer."""

    number: int
    values: list[Any]
    data: dict[str, Any]
    result: Canonical | list[FieldError]


def check_rows(path: Path, kind: Kind, today: dt.date, size: int) -> Generator[list[Checked], None, None]:
    """The file's rows, checked, in chunks of ``size`` (in this process)."""
    sheet = files.open_sheet(path, count=False)
    try:
        layout = columns.layout(kind, sheet.headers)
        chunk: list[Checked] = []
        for number, values in sheet.rows:
            data = columns.to_record(kind, layout, values)
            chunk.append(Checked(number, values, data, validate(kind, data, today=today)))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        sheet.close()


def checked_in_background(path: Path, kind: Kind, today: dt.date, size: int) -> Generator[list[Checked], None, None]:
    """``check_rows`` run by a child process, its chunks handed over through a pipe as they are ready."""
    command = [sys.executable, "-m", "gateway.archive.reader", str(path), kind.value, today.isoformat(), str(size)]
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert reader.stdout is not None
    try:
        while True:
            try:
                item = pickle.load(reader.stdout)  # our own child's output, never a file's bytes
            except EOFError:
                raise files.FileError(f"{path.name}: the reader process ended without finishing") from None
            if item is None:
                return
            if isinstance(item, str):
                raise files.FileError(f"{path.name}: {item}")
            yield item
    finally:
        if reader.poll() is None:
            reader.terminate()
        reader.stdout.close()
        reader.wait()


def main(argv: list[str]) -> int:
    path, kind, today, size = Path(argv[0]), Kind.from_code(argv[1]), dt.date.fromisoformat(argv[2]), int(argv[3])
    out = sys.stdout.buffer
    try:
        with contextlib.closing(check_rows(path, kind, today, size)) as chunks:
            for chunk in chunks:
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, out)
    except BrokenPipeError:  # the importing process stopped reading: nothing to report to
        return 1
    except Exception as exc:
        pickle.dump(f"{type(exc).__name__}: {exc}", out)
    out.flush()
    return 0


if __name__ == "__main__":
    # Run the module under its own name, so that the pickles name ``gateway.archive.reader.Checked``, which the
    # importing process can load, rather than ``__main__.Checked``.
    from gateway.archive import reader

    sys.exit(reader.main(sys.argv[1:]))
