"""The national template's columns and values as the import reads them, and the CSV encodings it detects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.archive import columns, files
from schemas.enums import Kind
from schemas.validation import Canonical, validate
from tests import archive
from tests.factories import BUREAU, COMPANY

PENALTY_HEADERS = [
    "业务编号",
    "责任科室",
    "行政相对人名称",
    "行政相对人类别",
    "行政相对人代码_1（统一社会信用代码）",  # full-width brackets, as Excel users type them
    "行政相对人代码_3(组织机构代码)",
    "法定代表人",
    "法定代表人证件类型",
    "法定代表人证件号码",
    "行政处罚决定书文号",
    "违法行为类型",
    "违法事实",
    "处罚依据",
    "处罚类别",
    "处罚内容",
    "罚款金额（万元）",
    "处罚决定日期",
    "处罚有效期",
    "公示截止期",
    "处罚机关",
    "处罚机关统一社会信用代码",
    "数据来源单位",
    "数据来源单位统一社会信用代码",
    "内部流水号",
]


def test_a_template_penalty_row_becomes_a_valid_canonical_record() -> None:
    layout = columns.layout(Kind.PENALTY, PENALTY_HEADERS)
    assert layout.unknown == ("内部流水号",)  # reported, not guessed
    assert layout.fields[4] == "counterpart.uscc" and layout.fields[5] is None  # 组织机构代码: known, unused
    row = [
        "CF-2025-0001",
        "建工科",
        "怀化市鹤城建筑工程有限公司",
        "法人及非法人组织",
        COMPANY,
        "MA4L7P2K8",
        "张伟",
        "其他-军官证",
        "军字第123456号",
        "怀建罚决〔2025〕1号",
        "未取得施工许可证擅自施工",
        "当事人在未取得施工许可证的情况下擅自开工建设。",
        "《建筑工程施工许可管理办法》第十二条",
        "罚款；其他-责令改正",
        "罚款2000元",
        0.2,
        dt.datetime(2025, 3, 4),  # noqa: DTZ001  (spreadsheet date cells are naive)
        "2025/3/11",
        "长期",
        "怀化市住房和城乡建设局",
        BUREAU,
        "怀化市住房和城乡建设局",
        BUREAU,
        "00017",
    ]
    data = columns.to_record(Kind.PENALTY, layout, row)
    assert data["counterpart"]["legal_representative_id_type"] == "other"
    assert data["counterpart"]["legal_representative_id_type_other"] == "军官证"
    assert data["penalty_categories"] == ["罚款", "其他"]
    assert (data["fine_amount"], data["decision_date"], data["valid_until"], data["publish_until"]) == (
        "0.2",
        "2025-03-04",
        "2025-03-11",
        "2099-12-31",
    )
    result = validate(Kind.PENALTY, data, today=dt.date(2026, 11, 30))
    assert isinstance(result, Canonical), result
    assert result.content["penalty_categories"] == ["fine", "other"]


def test_licence_values_as_old_systems_write_them() -> None:
    layout = columns.layout(Kind.LICENCE, ["业务编号", "当前状态", "许可编号", "有效期至", "许可决定日期", "备注"])
    data = columns.to_record(Kind.LICENCE, layout, ["XK-1", "1", 4312002026.0, "2026-1-5", dt.date(2026, 1, 2), "  "])
    assert data == {
        "source_id": "XK-1",
        "status": "valid",  # 当前状态 1 = 有效
        "licence_number": "4312002026",  # a number typed into a text column
        "valid_to": "2026-01-05",
        "decision_date": "2026-01-02",
    }  # the blank 备注 is absent, not ""
    # What the template cannot say right is left for the validation to name.
    assert columns.to_record(Kind.LICENCE, layout, ["XK-2", "有效", None, "2026年1月5日", None, None])["valid_to"] == (
        "2026年1月5日"
    )


def test_a_committers_code_goes_where_its_category_says() -> None:
    layout = columns.layout(Kind.COMMITMENT, ["业务编号", "承诺人名称", "承诺人类别", "承诺人代码"])
    company = columns.to_record(Kind.COMMITMENT, layout, ["CN-1", "某公司", "法人及非法人组织", COMPANY])
    assert company["counterpart"] == {"name": "某公司", "category": "法人及非法人组织", "uscc": COMPANY}
    person = columns.to_record(Kind.COMMITMENT, layout, ["CN-2", "张三", "自然人", "43120219850612031X"])
    assert person["counterpart"]["id_type"] == "resident_id" and "uscc" not in person["counterpart"]
    assert layout.header_of("counterpart.id_number") == "承诺人代码"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (["行政相对人名称", "许可内容"], "no 业务编号 column"),
        (["业务编号", "统一社会信用代码", "行政相对人代码_1(统一社会信用代码)"], "both give counterpart.uscc"),
    ],
)
def test_a_header_row_that_is_not_the_template_is_refused(headers: list[str], message: str) -> None:
    with pytest.raises(columns.HeaderError, match=message):
        columns.layout(Kind.LICENCE, headers)


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8-sig"), ("gb18030", "gb18030")],
)
def test_csv_encodings_are_detected(tmp_path: Path, encoding: str, expected: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text("业务编号,行政相对人名称\nXK-1,怀化市鹤城建筑工程有限公司\n", encoding=encoding)
    assert files.detect_encoding(path) == expected
    sheet = files.open_sheet(path)
    try:
        assert sheet.headers == ["业务编号", "行政相对人名称"] and sheet.total == 1
        assert list(sheet.rows) == [(2, ["XK-1", "怀化市鹤城建筑工程有限公司"])]
    finally:
        sheet.close()


def test_a_small_xlsx_read_whole_gives_what_the_stream_gives(tmp_path: Path) -> None:
    """calamine (small files) and openpyxl's stream (large ones) must map to the same records: same header, same
    row numbers for the errors file, empty cells as None, date cells as dates, numbers as numbers."""
    path = archive.write_xlsx(tmp_path / "a.xlsx", 60)
    whole, streamed = files.open_sheet(path), files.open_sheet(path, in_memory_xlsx_bytes=0)
    try:
        assert whole.headers == streamed.headers and whole.total == 60  # openpyxl knows only what the file says
        rows, expected = list(whole.rows), list(streamed.rows)
        assert [n for n, _ in rows] == [n for n, _ in expected] == list(range(2, 62))

        # a date cell: calamine gives the date, openpyxl the datetime at midnight; the mapping takes either
        def as_date(v: object) -> object:
            return v.date() if isinstance(v, dt.datetime) and v.time() == dt.time() else v

        def trimmed(values: list[object]) -> list[object]:  # calamine pads a row to the sheet's width with None
            while values and values[-1] is None:
                values = values[:-1]
            return values

        assert [(n, trimmed(v)) for n, v in rows] == [(n, trimmed([as_date(v) for v in vs])) for n, vs in expected]
        assert any(v is None for _, values in rows for v in values)  # the blank cells, not ""
        assert any(isinstance(v, dt.date) for _, values in rows for v in values)  # date cells
    finally:
        whole.close()
        streamed.close()


def test_a_file_that_is_not_a_spreadsheet_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "a.xlsx"
    fake.write_bytes(b"not a zip")
    with pytest.raises(files.FileError, match="not a readable XLSX workbook"):
        files.open_sheet(fake)
    with pytest.raises(files.FileError, match="not a readable XLSX workbook"):
        files.open_sheet(fake, in_memory_xlsx_bytes=0)
    with pytest.raises(files.FileError, match=r"expected an \.xlsx or \.csv"):
        files.open_sheet(tmp_path / "a.pdf")


def test_a_csv_whose_bytes_go_bad_half_way_is_a_clear_error(tmp_path: Path) -> None:
    path = archive.write_csv(tmp_path / "a.csv", 300)  # GB18030, more than the 8 KB decoded at a time
    path.write_bytes(path.read_bytes() + b"XK-BAD,\xff\xff\r\n")  # 0xFF starts no GB18030 character
    undecodable = r"^a\.csv: bytes that are neither UTF-8 nor GB18030; save it again as CSV"
    with pytest.raises(files.FileError, match=undecodable + "$"):
        files.open_sheet(path)  # counting the rows for the progress bar finds them, before any row is read
    sheet = files.open_sheet(path, count=False)
    try:
        with pytest.raises(files.FileError, match=undecodable + r" \(after line \d+\)$"):
            list(sheet.rows)
    finally:
        sheet.close()
