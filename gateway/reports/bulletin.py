"""The monthly 通报 (bulletin) as a Word document: what leadership prints, signs and circulates.

Plain A4 as official documents are set: the title in 宋体, body text in 仿宋, tables in 宋体, page numbers in the
footer. Word picks a font for Chinese text from the run's East Asian font (``w:eastAsia``), not from the Latin
name python-docx sets, so both are written. The bulletin names every department below 100% with its late and
overdue items (定期通报: the plan asks the credit office to name units that lag), and, through the
report's extra sections, the monthly and yearly tasks (月度任务, 年度任务) met or not.
Like every format it is a pure function of the stored report document.
"""

from __future__ import annotations

import io
from typing import Any

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt
from docx.table import Table
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from gateway.reports import joint
from gateway.reports.build import kind_label
from gateway.reports.render import (
    DEFINITION_LABELS,
    LISTING_HEADERS,
    deliveries,
    local_text,
    percent,
    quota_rows,
    target_label,
)

TITLE_FONT, BODY_FONT, TABLE_FONT = "宋体", "仿宋", "宋体"
BUREAU = "怀化市住房和城乡建设局"
NUMERALS = "一二三四五六七八九十"


def _font(run: Run, name: str, size: float, *, bold: bool = False) -> Run:
    run.font.name = name
    run.font.size = Pt(size)
    run.font.bold = bold
    fonts = run._element.get_or_add_rPr().get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), name)
    return run


def _paragraph(
    doc: Any,
    text: str = "",
    *,
    font: str = BODY_FONT,
    size: float = 14,
    bold: bool = False,
    align: Any = None,
    indent: bool = True,
) -> Paragraph:
    p: Paragraph = doc.add_paragraph()
    if align is not None:
        p.alignment = align
    if indent:
        p.paragraph_format.first_line_indent = Pt(size * 2)
    p.paragraph_format.space_after = Pt(4)
    if text:
        _font(p.add_run(text), font, size, bold=bold)
    return p


def _heading(doc: Any, number: int, text: str) -> None:
    _paragraph(doc, f"{NUMERALS[number - 1]}、{text}", font="黑体", size=14, indent=True)


TEXT_WIDTH_CM = 15.6  # A4 less the margins below


def _table(
    doc: Any, headers: list[str], rows: list[list[Any]], widths: list[float] | None = None, size: float = 10
) -> Table:
    """A grid table, the first column wider (names), or the widths given (cm); an empty one says 无."""
    if widths is None:
        first = 2.6
        widths = [first] + [(TEXT_WIDTH_CM - first) / (len(headers) - 1)] * (len(headers) - 1)
    table: Table = doc.add_table(rows=1, cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    for cell, header in zip(table.rows[0].cells, headers, strict=True):
        _font(cell.paragraphs[0].add_run(header), TABLE_FONT, size, bold=True)
        cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
    if not rows:
        merged = table.add_row().cells  # type: ignore[no-untyped-call]
        cell = merged[0].merge(merged[-1])
        _font(cell.paragraphs[0].add_run("无"), TABLE_FONT, size)
        cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
    for row in rows:
        cells = table.add_row().cells  # type: ignore[no-untyped-call]
        for index, (cell, value) in enumerate(zip(cells, row, strict=True)):
            _font(cell.paragraphs[0].add_run("" if value is None else str(value)), TABLE_FONT, size)
            cell.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.LEFT if index == 0 else WD_ALIGN_PARAGRAPH.CENTER
    for column, width in zip(table.columns, widths, strict=False):  # the grid (LibreOffice) and each cell (Word)
        column.width = Cm(width)
        for cell in column.cells:
            cell.width = Cm(width)
    doc.add_paragraph()
    return table


def _page_number(paragraph: Paragraph) -> None:
    """第 N 页 with a PAGE field, so Word and LibreOffice number the pages themselves; every piece of the field
    is a run of its own with the footer's font, or the number comes out in the body's size."""
    _font(paragraph.add_run("第 "), BODY_FONT, 10.5)
    for kind, text in (("begin", None), (None, " PAGE "), ("separate", None), (None, "1"), ("end", None)):
        run = _font(paragraph.add_run(), BODY_FONT, 10.5)
        if kind is not None:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), kind)
        elif text == " PAGE ":
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = text
        else:
            element = OxmlElement("w:t")
            element.text = text
        run._element.append(element)
    _font(paragraph.add_run(" 页"), BODY_FONT, 10.5)
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER


def _setup(doc: Any) -> None:
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
    normal = doc.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.font.size = Pt(14)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)
    _page_number(section.footer.paragraphs[0])


def _count_row(name: str, records: Any, counts: dict[str, Any]) -> list[Any]:
    return [
        name,
        records,
        deliveries(counts),
        counts["on_time"],
        counts["late"],
        counts["overdue"],
        counts["pending"],
        percent(counts["rate"]),
    ]


COUNT_HEADERS = ["记录数", "投递数", "按时公示", "超期公示", "逾期未公示", "待公示", "公示率"]


def to_docx(report: dict[str, Any]) -> bytes:
    doc = Document()
    _setup(doc)
    summary, total = report["summary"], report["summary"]["total"]
    _paragraph(doc, BUREAU, font=TITLE_FONT, size=22, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False)
    _paragraph(
        doc, "信用信息公示情况通报", font=TITLE_FONT, size=22, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False
    )
    _paragraph(doc, f"（{report['period']}）", size=16, align=WD_ALIGN_PARAGRAPH.CENTER, indent=False)

    _heading(doc, 1, "总体情况")
    _paragraph(
        doc,
        f"本期统计决定日期为 {report['from']} 至 {report['to']} 的行政许可、行政处罚、信用承诺和红黑名单记录，"
        f"统计截至 {report['as_of']}。共有记录 {summary.get('records', 0)} 条，应向各目标平台投递 "
        f"{deliveries(total)} 次，计入公示率 {total['counted']} 次，其中按时公示 {total['on_time']} 次、"
        f"超期公示 {total['late']} 次、逾期未公示 {total['overdue']} 次；待公示 {total['pending']} 次不计入。"
        f"总体公示率为 {percent(total['rate'])}。",
    )

    _heading(doc, 2, "各科室公示情况")
    _table(
        doc,
        ["科室", *COUNT_HEADERS],
        [_count_row(d["department"], d.get("records", ""), d["counts"]) for d in report["by_department"]],
    )
    _heading(doc, 3, "各目标平台公示情况")
    _table(
        doc,
        ["目标平台", *COUNT_HEADERS[1:]],
        [[target_label(t), *_count_row("", "", c)[2:]] for t, c in summary["by_target"].items()],
    )

    _heading(doc, 4, "公示率未达100%的科室")
    lagging = [d for d in report["by_department"] if d["counts"]["rate"] is not None and d["counts"]["rate"] < 1]
    if not lagging:
        _paragraph(doc, "本期各科室公示率均达到100%。")
    for d in lagging:
        counts = d["counts"]
        _paragraph(
            doc,
            f"{d['department']}：公示率 {percent(counts['rate'])}，超期公示 {counts['late']} 项，"
            f"逾期未公示 {counts['overdue']} 项。",
            bold=True,
        )
        items = [(i, "逾期未公示", "") for i in report["overdue"] if i["department"] == d["department"]]
        items += [
            (i, "超期公示", local_text(i.get("published_at")))
            for i in report["late"]
            if i["department"] == d["department"]
        ]
        _table(
            doc,
            [*LISTING_HEADERS[1:], "情况", "公示时间"],
            [
                [
                    kind_label(i["kind"]),
                    i["source_id"],
                    target_label(i["target"]),
                    i["decided_on"],
                    i.get("due_date") or "",
                    what,
                    when[:16],  # to the minute: enough on paper
                ]
                for i, what, when in items
            ],
            widths=[2.4, 2.0, 1.7, 2.5, 2.5, 2.0, 2.5],
            size=9,
        )

    _heading(doc, 5, f"{report['from'][:4]}年度记录")
    _paragraph(doc, "各科室本年度的各类记录条数，及推送（至少一个目标平台受理）的红名单、黑名单变更次数。")
    _table(doc, ["科室", "年度", "红名单", "黑名单", "信用承诺", "行政处罚", "行政许可"], quota_rows(report))

    _heading(doc, 6, "联合奖惩")
    joint_rows = joint.rows(report)
    if joint_rows:
        _paragraph(doc, "本期审批前信用查询及采取的联合奖惩措施，按科室统计。")
        _table(doc, joint.HEADERS, joint_rows, size=9)
    else:
        _paragraph(doc, "本期无审批前信用查询。")

    for number, section in enumerate(report.get("extra_sections", []), start=7):
        _heading(doc, number, str(section["title"]))
        if section.get("note"):
            _paragraph(doc, str(section["note"]))
        _table(doc, list(section["headers"]), [list(r) for r in section["rows"]])

    _paragraph(doc, "附：统计口径", size=12, bold=True, indent=False)
    for key, text in report["definitions"].items():
        _paragraph(doc, f"{DEFINITION_LABELS.get(key, key)}：{text.split('：', 1)[-1]}", size=10.5, indent=False)
    _paragraph(doc, f"{BUREAU}信用办", align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False)
    _paragraph(doc, local_text(report["generated_at"])[:10], align=WD_ALIGN_PARAGRAPH.RIGHT, indent=False)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
