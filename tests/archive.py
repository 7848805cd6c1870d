"""Archive spreadsheets in the national licence template, made for the import tests and the benchmark.

Rows are valid licences except every ``BAD_EVERY``-th (from ``BAD_FROM``), which carries one of several faults a
real archive has; ``bad_rows(n)`` says which rows those are, so tests never hard-code the count.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from tests.factories import BUREAU, COMPANY, make_uscc, with_wrong_check_digit

HEADERS = [
    "业务编号",
    "责任科室",
    "行政相对人名称",
    "行政相对人类别",
    "行政相对人代码_1(统一社会信用代码)",
    "行政相对人代码_2(工商注册号)",
    "法定代表人",
    "行政许可决定文书名称",
    "行政许可决定文书号",
    "许可类别",
    "许可证书名称",
    "许可编号",
    "许可内容",
    "许可决定日期",
    "有效期自",
    "有效期至",
    "许可机关",
    "许可机关统一社会信用代码",
    "当前状态",
    "数据来源单位",
    "数据来源单位统一社会信用代码",
    "备注",
]
BAD_FROM, BAD_EVERY = 13, 270
DEPARTMENTS = ("行政审批科", "建工科", "房监科")
COMPANIES = [make_uscc(f"91431200MA4L{i:05d}") for i in range(50)] + [COMPANY]
# (header, bad value, the rule the errors file must name)
FAULTS: list[tuple[str, Any, str]] = [
    ("行政相对人代码_1(统一社会信用代码)", with_wrong_check_digit(COMPANY), "invalid_uscc"),
    ("许可内容", None, "required"),
    ("许可类别", "普普", "unknown_value"),
    ("有效期至", "2024/01/01", "date_order"),
    ("许可决定日期", "2026/13/01", "invalid_date"),
    ("行政相对人类别", "法人", "unknown_value"),
    ("业务编号", "duplicate", "duplicate_source_id"),
    ("许可决定日期", "2099/01/01", "future_date"),
]


def bad_rows(n: int) -> list[int]:
    """Indexes (0-based, data rows) of the rows with a fault."""
    return list(range(BAD_FROM, n, BAD_EVERY))


def fault_of(index: int) -> tuple[str, Any, str]:
    return FAULTS[(index - BAD_FROM) // BAD_EVERY % len(FAULTS)]


def decided_on(index: int) -> dt.date:
    return dt.date(2025, 1, 2) + dt.timedelta(days=index % 600)


def rows(n: int, prefix: str = "XK-IMP", *, date_cells: bool = True) -> Iterator[list[Any]]:
    """``n`` data rows; with ``date_cells`` the decision dates are date values (XLSX cells), else ``YYYY/MM/DD``."""
    bad = set(bad_rows(n))
    for i in range(n):
        decided = decided_on(i)
        until = dt.date(2099, 12, 31) if i % 7 == 0 else decided + dt.timedelta(days=365)
        row: dict[str, Any] = {
            "业务编号": f"{prefix}-{i:06d}",
            "责任科室": DEPARTMENTS[i % len(DEPARTMENTS)],
            "行政相对人名称": f"怀化市第{i % 51}建筑工程有限公司",
            "行政相对人类别": "法人及非法人组织",
            "行政相对人代码_1(统一社会信用代码)": COMPANIES[i % len(COMPANIES)],
            "行政相对人代码_2(工商注册号)": None,
            "法定代表人": "张伟",
            "行政许可决定文书名称": "建筑工程施工许可证核发决定书",
            "行政许可决定文书号": f"怀建许〔{decided.year}〕{i}号",
            "许可类别": "普通",
            "许可证书名称": "建筑工程施工许可证",
            "许可编号": f"4312002026{i:08d}",
            "许可内容": f"准予核发施工许可证，编号{i}",
            "许可决定日期": decided if date_cells else decided.strftime("%Y/%m/%d"),
            "有效期自": decided.strftime("%Y/%m/%d"),
            "有效期至": until.strftime("%Y/%m/%d") if i % 2 else until.isoformat(),
            "许可机关": "怀化市住房和城乡建设局",
            "许可机关统一社会信用代码": BUREAU,
            "当前状态": "有效",
            "数据来源单位": "怀化市住房和城乡建设局",
            "数据来源单位统一社会信用代码": BUREAU,
            "备注": None,
        }
        if i in bad:
            header, value, _ = fault_of(i)
            if value == "duplicate":  # the previous row's id with other content
                row["业务编号"] = f"{prefix}-{i - 1:06d}"
            else:
                row[header] = value
        yield [row[h] for h in HEADERS]


def write_xlsx(path: Path, n: int, prefix: str = "XK-IMP") -> Path:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("行政许可")
    sheet.append(HEADERS)
    for row in rows(n, prefix):
        sheet.append(row)
    book.save(path)
    return path


def write_csv(path: Path, n: int, prefix: str = "XK-IMP", encoding: str = "gb18030") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for row in rows(n, prefix, date_cells=False):
            writer.writerow(["" if v is None else v for v in row])
    return path
