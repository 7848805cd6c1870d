"""Render a stored report as JSON, CSV, XLSX or stand-alone HTML. Pure functions of the report document.

CSV is UTF-8 with a byte-order mark, because Excel (what the bureau opens it with) reads Chinese headers wrongly
without one. XLSX has one sheet per view with Chinese headers and set column widths. The HTML page needs no
network: its styles are inline and the 公示率 chart is an inline SVG.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Callable
from typing import Any, Literal

import orjson
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from gateway.reports import joint
from gateway.reports.build import kind_label
from schemas.calendar import ZONE
from schemas.quotas import UNMET

Format = Literal["json", "csv", "xlsx", "html", "docx"]
FORMATS: tuple[Format, ...] = ("json", "csv", "xlsx", "html", "docx")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
TARGETS = {"national": "信用中国", "provincial": "信用湖南", "municipal": "信用怀化", "portal": "门户网站"}
COUNT_HEADERS = ["投递数", "按时公示", "超期公示", "逾期未公示", "待公示", "不计", "无法计算", "计入投递数", "公示率"]
COUNT_KEYS = ["on_time", "late", "overdue", "pending", "not_applicable", "unknown", "counted"]
STANDING_KEYS = COUNT_KEYS[:-1]
DEFINITION_LABELS = {
    "period": "统计范围",
    "records": "记录数",
    "deliveries": "投递数",
    "on_time": "按时公示",
    "late": "超期公示",
    "overdue": "逾期未公示",
    "pending": "待公示",
    "not_applicable": "不计",
    "unknown": "无法计算",
    "rate": "公示率",
    "quota": "年度记录",
    "tasks": "月度、年度任务",
    "time": "时间",
}
NO_RATE = "—"
PERCENT_FORMAT = "0.00%"
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"


def percent(rate: float | None) -> str:
    return NO_RATE if rate is None else f"{rate * 100:.2f}%"


def target_label(value: str) -> str:
    return TARGETS.get(value, value)


def deliveries(counts: dict[str, Any]) -> int:
    return sum(int(counts[k]) for k in STANDING_KEYS)


def _count_values(counts: dict[str, Any]) -> list[Any]:
    """投递数, the standings, 计入投递数 and the rate as a number (None: no rate)."""
    return [deliveries(counts), *(counts[k] for k in COUNT_KEYS), counts["rate"]]


def _count_cells(counts: dict[str, Any]) -> list[Any]:
    return [*_count_values(counts)[:-1], percent(counts["rate"])]


def local_moment(text: str | None) -> dt.datetime | None:
    """A stored ISO moment as Beijing wall time to the second (naive: a spreadsheet cell has no zone)."""
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(ZONE).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def local_text(text: str | None) -> str:
    moment = local_moment(text)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def render(report: dict[str, Any], fmt: Format) -> bytes:
    from gateway.reports.bulletin import to_docx

    renderers: dict[str, Callable[[dict[str, Any]], bytes]] = {
        "json": to_json,
        "csv": to_csv,
        "xlsx": to_xlsx,
        "html": to_html,
        "docx": to_docx,
    }
    return renderers[fmt](report)


def to_json(report: dict[str, Any]) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2)


def to_csv(report: dict[str, Any]) -> bytes:
    """The finest grain (department × kind × target), then the totals per department and overall."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["期间", "科室", "类别", "目标平台", *COUNT_HEADERS])
    for g in report["groups"]:
        writer.writerow(
            [report["period"], g["department"], kind_label(g["kind"]), target_label(g["target"]), *_count_cells(g)]
        )
    for d in report["by_department"]:
        writer.writerow([report["period"], d["department"], "合计", "合计", *_count_cells(d["counts"])])
    writer.writerow([report["period"], "全局", "合计", "合计", *_count_cells(report["summary"]["total"])])
    writer.writerows(joint.block(report))
    for section in report.get("extra_sections", []):
        writer.writerows([[], [section["title"], report["period"]], section["headers"], *section["rows"]])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


_HEAD = Font(bold=True, color="FFFFFF")
_FILL = PatternFill("solid", fgColor="1F4E79")
_COUNT_WIDTHS = [8, 10, 10, 12, 8, 8, 10, 12, 10]


def _sheet(
    book: Workbook,
    title: str,
    headers: list[str],
    rows: list[list[Any]],
    widths: list[int],
    formats: dict[int, str] | None = None,
) -> Any:
    """A sheet with a styled header row; ``formats`` maps 0-based columns to number formats (rates, dates)."""
    sheet = book.create_sheet(title)
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font, cell.fill = _HEAD, _FILL
        cell.alignment = Alignment(horizontal="center")
    if not rows:
        sheet.append(["无"])
    for row in rows:
        sheet.append(
            [
                NO_RATE if value is None and (formats or {}).get(i) == PERCENT_FORMAT else value
                for i, value in enumerate(row)
            ]
        )
        for index, number_format in (formats or {}).items():
            cell = sheet.cell(row=sheet.max_row, column=index + 1)
            if not isinstance(cell.value, str):
                cell.number_format = number_format
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = width
    sheet.freeze_panes = "A2"
    return sheet


def _rate_column(leading: int) -> dict[int, str]:
    return {leading + len(COUNT_HEADERS) - 1: PERCENT_FORMAT}


def to_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    summary = report["summary"]
    records_by_kind = summary.get("records_by_kind", {})
    rows: list[list[Any]] = [["全局", "合计", summary.get("records"), *_count_values(summary["total"])]]
    rows += [["目标平台", target_label(t), None, *_count_values(c)] for t, c in summary["by_target"].items()]
    rows += [["类别", kind_label(k), records_by_kind.get(k), *_count_values(c)] for k, c in summary["by_kind"].items()]
    sheet = _sheet(
        book, "汇总", ["维度", "名称", "记录数", *COUNT_HEADERS], rows, [12, 16, 8, *_COUNT_WIDTHS], _rate_column(3)
    )
    sheet.append([])
    meta: list[tuple[str, Any, str | None]] = [
        ("期间", report["period"], None),
        ("决定日期自", dt.date.fromisoformat(report["from"]), DATE_FORMAT),
        ("决定日期至", dt.date.fromisoformat(report["to"]), DATE_FORMAT),
        ("统计截至", dt.date.fromisoformat(report["as_of"]), DATE_FORMAT),
        ("生成时间（北京时间）", local_moment(report["generated_at"]), TIME_FORMAT),
    ]
    for label, value, number_format in meta:
        sheet.append([label, value])
        if number_format:
            sheet.cell(row=sheet.max_row, column=2).number_format = number_format
    sheet.append([])
    sheet.append(["口径"])
    for key, text in report["definitions"].items():
        sheet.append([DEFINITION_LABELS.get(key, key), text.split("：", 1)[-1]])

    rows = [[d["department"], "合计", d.get("records"), *_count_values(d["counts"])] for d in report["by_department"]]
    rows += [
        [g["department"], f"{kind_label(g['kind'])} / {target_label(g['target'])}", None, *_count_values(g)]
        for g in report["groups"]
    ]
    rows.sort(key=lambda r: (r[0], r[1] != "合计"))
    _sheet(
        book,
        "按科室",
        ["科室", "类别 / 目标平台", "记录数", *COUNT_HEADERS],
        rows,
        [16, 24, 8, *_COUNT_WIDTHS],
        _rate_column(3),
    )

    def listing(items: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                i["department"],
                kind_label(i["kind"]),
                i["source_id"],
                target_label(i["target"]),
                dt.date.fromisoformat(i["decided_on"]),
                dt.date.fromisoformat(i["due_date"]) if i.get("due_date") else None,
                local_moment(i.get("published_at")),
            ]
            for i in items
        ]

    headers = ["科室", "类别", "业务编号", "目标平台", "决定日期", "公示期限", "公示时间（北京时间）"]
    widths = [16, 14, 24, 12, 12, 12, 22]
    dates = {4: DATE_FORMAT, 5: DATE_FORMAT, 6: TIME_FORMAT}
    _sheet(book, "逾期未公示", headers[:-1], [r[:-1] for r in listing(report["overdue"])], widths[:-1], dates)
    _sheet(book, "超期公示", headers, listing(report["late"]), widths, dates)
    _sheet(book, "年度记录", QUOTA_HEADERS, quota_rows(report), [16, 8, 12, 12, 10, 10, 10])
    _sheet(book, "联合奖惩", joint.HEADERS, joint.rows(report), [16] + [10] * (len(joint.HEADERS) - 1))
    for section in report.get("extra_sections", []):
        _sheet(book, str(section["title"])[:31], section["headers"], section["rows"], [16] * len(section["headers"]))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


QUOTA_HEADERS = ["科室", "年度", "红名单推送", "黑名单推送", "信用承诺", "行政处罚", "行政许可"]


def quota_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            q["department"],
            q["year"],
            q["red"],
            q["black"],
            q["commitments"],
            q["penalties"],
            q.get("licences", 0),
        ]
        for q in report["quotas"]
    ]


def _chart(trend: list[dict[str, Any]]) -> str:
    """An inline SVG of 公示率 per month of decision, each bar labelled with its value; a month with nothing
    counted says so instead of drawing a bar."""
    width, height, left, bottom, top = 720, 260, 48, 32, 28
    if not trend:
        return '<p class="empty">无</p>'
    step = (width - left - 16) / max(len(trend), 1)
    parts = [
        f'<svg role="img" aria-label="公示率按月趋势" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">'
    ]
    for pct in (0, 50, 100):
        y = top + (height - top - bottom) * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{pct}%</text>')
    for index, point in enumerate(trend):
        x = left + step * index + step * 0.2
        middle = x + step * 0.3
        label = html.escape(point["month"])
        parts.append(f'<text x="{middle:.1f}" y="{height - 12}" text-anchor="middle" font-size="10">{label}</text>')
        if point["rate"] is None:
            parts.append(
                f'<text class="no-rate" x="{middle:.1f}" y="{height - bottom - 4}" text-anchor="middle" '
                f'font-size="10" fill="#888">无</text>'
            )
            continue
        bar = (height - top - bottom) * point["rate"]
        y = height - bottom - bar
        value = percent(point["rate"])
        parts.append(
            f'<rect class="bar" data-month="{label}" data-rate="{point["rate"]:.4f}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{step * 0.6:.1f}" height="{bar:.1f}" fill="#1f4e79">'
            f"<title>{label}：{value}</title></rect>"
        )
        parts.append(
            f'<text class="bar-value" x="{middle:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="10">'
            f"{value}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


_UNMET = ' class="unmet"'  # a quota row's 未达标, shown in red


def _table(headers: list[str], rows: list[list[Any]], name: str) -> str:
    """A table; an empty one says 无 rather than showing a header alone."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    if rows:
        body = "".join(
            "<tr>"
            + "".join(f"<td{_UNMET if c == UNMET else ''}>{html.escape('' if c is None else str(c))}</td>" for c in row)
            + "</tr>"
            for row in rows
        )
    else:
        body = f'<tr><td class="empty" colspan="{len(headers)}">无</td></tr>'
    return f'<table data-table="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def listing_rows(items: list[dict[str, Any]], *, published: bool) -> list[list[Any]]:
    return [
        [
            i["department"],
            kind_label(i["kind"]),
            i["source_id"],
            target_label(i["target"]),
            i["decided_on"],
            i.get("due_date") or "",
            *([local_text(i.get("published_at"))] if published else []),
        ]
        for i in items
    ]


LISTING_HEADERS = ["科室", "类别", "业务编号", "目标平台", "决定日期", "公示期限"]


def to_html(report: dict[str, Any]) -> bytes:
    e = html.escape
    summary = report["summary"]
    total = summary["total"]
    records_by_kind = summary.get("records_by_kind", {})
    departments = [[d["department"], d.get("records", ""), *_count_cells(d["counts"])] for d in report["by_department"]]
    targets = [[target_label(t), *_count_cells(c)] for t, c in summary["by_target"].items()]
    kinds = [[kind_label(k), records_by_kind.get(k, ""), *_count_cells(c)] for k, c in summary["by_kind"].items()]
    overdue = listing_rows(report["overdue"], published=False)
    late = listing_rows(report["late"], published=True)
    extra = "".join(
        f"<h2>{e(str(s['title']))}</h2>"
        + (f'<p class="note">{e(str(s["note"]))}</p>' if s.get("note") else "")
        + _table(s["headers"], s["rows"], str(s.get("key", "extra")))
        for s in report.get("extra_sections", [])
    )
    definitions = "".join(
        f"<li><b>{e(DEFINITION_LABELS.get(k, k))}</b>：{e(text.split('：', 1)[-1])}</li>"
        for k, text in report["definitions"].items()
    )
    generated = local_text(report["generated_at"])
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>公示率报告 {e(report["period"])}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #1f4e79; color: #fff; }} td:first-child {{ text-align: left; }}
td.empty {{ text-align: center; color: #888; }}
td.unmet {{ color: #c00; font-weight: bold; }} p.note {{ color: #555; }}
table[data-table$="_tasks"] td {{ text-align: center; }}
.rate {{ font-size: 2.5rem; font-weight: bold; color: #1f4e79; margin: 0.5rem 0; }}
</style></head><body>
<h1>公示率报告 {e(report["period"])}</h1>
<p>决定日期 {e(report["from"])} 至 {e(report["to"])}；统计截至 {e(report["as_of"])}；
生成时间 <span id="generated">{e(generated)}</span>（北京时间）</p>
<p class="rate" id="rate">{percent(total["rate"])}</p>
<p>记录数 <span id="records">{summary.get("records", "")}</span> 条；
投递数 <span id="deliveries">{deliveries(total)}</span> 次，
其中计入 {total["counted"]} 次：按时公示 {total["on_time"]}，超期公示 {total["late"]}，逾期未公示 {total["overdue"]}；
待公示 {total["pending"]}、不计 {total["not_applicable"]}、无法计算 {total["unknown"]}（均不计入）。</p>
<p id="provisional">其中暂定期限 {total.get("provisional", 0)} 次；存量导入记录 {report.get("imported", 0)} 条。</p>
<h2>公示率趋势（按决定月份）</h2>{_chart(report["trend"])}
<h2>按科室</h2>{_table(["科室", "记录数", *COUNT_HEADERS], departments, "departments")}
<h2>按目标平台</h2>{_table(["目标平台", *COUNT_HEADERS], targets, "targets")}
<h2>按类别</h2>{_table(["类别", "记录数", *COUNT_HEADERS], kinds, "kinds")}
<h2>逾期未公示（{len(overdue)}）</h2>{_table(LISTING_HEADERS, overdue, "overdue")}
<h2>超期公示（{len(late)}）</h2>{_table([*LISTING_HEADERS, "公示时间"], late, "late")}
<h2>年度记录（{e(report["from"][:4])}年）</h2>{_table(QUOTA_HEADERS, quota_rows(report), "quotas")}
<h2>联合奖惩</h2>{_table(joint.HEADERS, joint.rows(report), "joint")}
{extra}<h2>口径</h2><ul>{definitions}</ul>
</body></html>
"""
    return page.encode("utf-8")
