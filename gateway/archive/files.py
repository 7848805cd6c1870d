"""Reading the archive's spreadsheets row by row, and writing the errors file in the same format.

XLSX up to ``IN_MEMORY_XLSX_BYTES`` is read whole by calamine (Rust, through python-calamine): ten times less CPU than
openpyxl (10,000 template rows: 0.17 s against 1.68 s), which is what kept an XLSX import far below the rate of a CSV
one. A larger file is streamed by openpyxl in read-only mode instead, whose memory stays flat however many rows the
file has: calamine holds the whole sheet, about 30 times the file's size. Both give the same values (empty cells as
None, dates as dates, numbers as numbers).

CSV comes as Excel in China writes it, GB18030, or as UTF-8 with or without a byte-order mark; the encoding is
detected, never asked for: a BOM means UTF-8, a file that decodes as strict UTF-8 is UTF-8, and anything else is
read as GB18030 (a superset of GBK and GB2312, which every byte sequence Excel writes is in).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

Format = Literal["xlsx", "csv"]
_CHUNK = 1 << 20
IN_MEMORY_XLSX_BYTES = 8 << 20  # about 100,000 template rows; the sheet then costs calamine some 250 MB at most


class FileError(ValueError):
    """The file cannot be read as a spreadsheet; the message says why."""


def format_of(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise FileError(f"{path.name}: expected an .xlsx or .csv file (the national template), got {suffix or 'none'}")


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (with or without a BOM: the codec accepts both), or ``gb18030``."""
    with path.open("rb") as raw:
        if raw.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        raw.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        try:
            while chunk := raw.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


@dataclass(slots=True)
class Sheet:
    """An open spreadsheet: its header row, an estimate of its data rows (for the progress bar), its rows."""

    format: Format
    encoding: str | None
    headers: list[Any]
    total: int | None
    rows: Iterator[tuple[int, list[Any]]]  # (spreadsheet row number, values); the header is row 1
    _close: Any

    def close(self) -> None:
        self._close()


def open_sheet(path: Path, *, count: bool = True, in_memory_xlsx_bytes: int = IN_MEMORY_XLSX_BYTES) -> Sheet:
    """Open a sheet; ``count`` False skips counting a CSV's records (a pass over the file) for the progress bar."""
    try:
        if format_of(path) == "xlsx":
            if path.stat().st_size <= in_memory_xlsx_bytes:
                return _read_xlsx(path)
            return _stream_xlsx(path)
        return _open_csv(path, count)
    except OSError as exc:
        raise FileError(f"{path}: {exc.strerror or exc}") from None


def _read_xlsx(path: Path) -> Sheet:
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
    except Exception as exc:  # CalamineError, ZipError, XmlError...: the bytes are not a workbook
        raise FileError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    first_row = sheet.start[0] + 1 if sheet.start else 1  # calamine starts at the first non-empty cell
    rows = sheet.iter_rows()
    header = next(rows, None)
    if header is None:
        book.close()
        raise FileError(f"{path.name}: the first sheet is empty; expected a header row")

    def data() -> Iterator[tuple[int, list[Any]]]:
        for number, values in enumerate(rows, start=first_row + 1):
            if any(v is not None and v != "" for v in values):
                yield number, [None if v == "" else v for v in values]  # as openpyxl gives an empty cell

    return Sheet("xlsx", None, list(header), max(sheet.height - 1, 0), data(), book.close)


def _stream_xlsx(path: Path) -> Sheet:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, ValueError, OSError) as exc:
        raise FileError(f"{path.name}: not a readable XLSX workbook ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends: the bytes are not a workbook
        raise FileError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        book.close()
        raise FileError(f"{path.name}: the first sheet is empty; expected a header row")
    total = sheet.max_row - 1 if sheet.max_row else None

    def data() -> Iterator[tuple[int, list[Any]]]:
        for number, values in enumerate(rows, start=2):
            if any(v is not None and v != "" for v in values):
                yield number, list(values)

    return Sheet("xlsx", None, list(header), total, data(), book.close)


def _open_csv(path: Path, count: bool) -> Sheet:
    encoding = detect_encoding(path)
    undecodable = f"{path.name}: bytes that are neither UTF-8 nor GB18030; save it again as CSV"
    try:
        total = _count_records(path, encoding) if count else None
    except UnicodeDecodeError:
        raise FileError(undecodable) from None
    handle: IO[str] = path.open(encoding=encoding, newline="")
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
    except UnicodeDecodeError:
        handle.close()
        raise FileError(undecodable) from None
    if header is None:
        handle.close()
        raise FileError(f"{path.name}: the file is empty; expected a header row")

    def data() -> Iterator[tuple[int, list[Any]]]:
        try:
            for values in reader:
                if any(v.strip() for v in values):
                    yield reader.line_num, list(values)
        except UnicodeDecodeError:  # only without ``count``, whose pass over the file finds them first
            raise FileError(f"{undecodable} (after line {reader.line_num})") from None

    return Sheet("csv", encoding, header, None if total is None else max(total - 1, 0), data(), handle.close)


def _count_records(path: Path, encoding: str) -> int:
    with path.open(encoding=encoding, newline="") as handle:
        return sum(1 for _ in csv.reader(handle))


class ErrorsFile:
    """The rejected rows, with their original columns and 错误原因, in the input's format (and CSV encoding)."""

    def __init__(self, path: Path, sheet: Sheet, headers: Sequence[str], reason_header: str) -> None:
        self.path, self.format, self.count = path, sheet.format, 0
        self.width = len(headers)
        columns = [*headers, reason_header]
        if sheet.format == "xlsx":
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("错误")
            self._sheet.append(columns)
        else:
            self._handle = path.open("w", encoding=sheet.encoding or "utf-8-sig", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(columns)

    def add(self, values: Sequence[Any], reason: str) -> None:
        padded = [*list(values)[: self.width], *[None] * (self.width - len(values))]
        if self.format == "xlsx":
            self._sheet.append([*padded, reason])
        else:
            self._writer.writerow([_csv_cell(v) for v in padded] + [reason])
        self.count += 1

    def close(self) -> None:
        if self.format == "xlsx":
            self._book.save(self.path)
        else:
            self._handle.close()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
