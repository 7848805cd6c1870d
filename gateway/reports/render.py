"""Render a stored report as JSON, CSV, XLSX or stand-alone HTML. Pure functions of the report document.

CSV is UTF-8 with a byte-order mark, because Excel (what the bureau opens it with) reads Chinese headers wrongly
without one. XLSX has one sheet per view with Chinese headers and set column widths. The HTML page needs no
network: its styles are inline and the 公示率 chart is an inline SVG.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable
from typing import Any, Literal

import orjson
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill

from gateway.reports import joint
from gateway.reports.build import DEFINITIONS, kind_label

Format = Literal["json", "csv", "xlsx", "html"]
FORMATS: tuple[Format, ...] = ("json", "csv", "xlsx", "html")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html; charset=utf-8",
}
TARGETS = {"national": "信用中国", "provincial": "信用湖南", "municipal": "信用怀化", "portal": "门户网站"}
COUNT_HEADERS = ["按时公示", "超期公示", "逾期未公示", "待公示", "不计", "无法计算", "计入数", "公示率"]
COUNT_KEYS = ["on_time", "late", "overdue", "pending", "not_applicable", "unknown", "counted"]


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.2f}%"


def target_label(value: str) -> str:
    return TARGETS.get(value, value)


def _count_cells(counts: dict[str, Any]) -> list[Any]:
    return [counts[k] for k in COUNT_KEYS] + [percent(counts["rate"])]


def render(report: dict[str, Any], fmt: Format) -> bytes:
    renderers: dict[str, Callable[[dict[str, Any]], bytes]] = {
        "json": to_json,
        "csv": to_csv,
        "xlsx": to_xlsx,
        "html": to_html,
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
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


_HEAD = Font(bold=True, color="FFFFFF")
_FILL = PatternFill("solid", fgColor="1F4E79")


def _sheet(book: Workbook, title: str, headers: list[str], rows: list[list[Any]], widths: list[int]) -> None:
    sheet = book.create_sheet(title)
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font, cell.fill = _HEAD, _FILL
        cell.alignment = Alignment(horizontal="center")
    for row in rows:
        sheet.append(row)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = width
    sheet.freeze_panes = "A2"


def to_xlsx(report: dict[str, Any]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    count_widths = [10, 10, 12, 8, 8, 10, 8, 10]
    summary = report["summary"]
    rows = [["全局", "合计", *_count_cells(summary["total"])]]
    rows += [["目标平台", target_label(t), *_count_cells(c)] for t, c in summary["by_target"].items()]
    rows += [["类别", kind_label(k), *_count_cells(c)] for k, c in summary["by_kind"].items()]
    _sheet(book, "汇总", ["维度", "名称", *COUNT_HEADERS], rows, [12, 16, *count_widths])
    summary_sheet = book["汇总"]
    summary_sheet.append([])
    summary_sheet.append(["期间", report["period"], "决定日期", f"{report['from']} 至 {report['to']}"])
    summary_sheet.append(["统计截至", report["as_of"], "生成时间", report["generated_at"]])
    for name, text in DEFINITIONS.items():
        summary_sheet.append([name, text])

    rows = [[d["department"], "合计", *_count_cells(d["counts"])] for d in report["by_department"]]
    rows += [
        [g["department"], f"{kind_label(g['kind'])} / {target_label(g['target'])}", *_count_cells(g)]
        for g in report["groups"]
    ]
    rows.sort(key=lambda r: (r[0], r[1] != "合计"))
    _sheet(book, "按科室", ["科室", "类别 / 目标平台", *COUNT_HEADERS], rows, [16, 24, *count_widths])

    def listing(items: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                i["department"],
                kind_label(i["kind"]),
                i["source_id"],
                target_label(i["target"]),
                i["decided_on"],
                i["due_date"],
                i.get("published_at") or "",
            ]
            for i in items
        ]

    headers = ["科室", "类别", "业务编号", "目标平台", "决定日期", "公示期限", "公示时间"]
    widths = [16, 14, 24, 12, 12, 12, 28]
    _sheet(book, "逾期未公示", headers, listing(report["overdue"]), widths)
    _sheet(book, "超期公示", headers, listing(report["late"]), widths)
    rows = [
        [q["department"], q["year"], q["red"], q["black"], q["commitments"], q["penalties"], "是" if q["met"] else "否"]
        for q in report["quotas"]
    ]
    _sheet(
        book,
        "年度任务",
        ["科室", "年度", "红名单推送", "黑名单推送", "信用承诺", "行政处罚", "达标"],
        rows,
        [16, 8, 12, 12, 10, 10, 8],
    )
    _sheet(book, "联合奖惩", joint.HEADERS, joint.rows(report), [16] + [10] * (len(joint.HEADERS) - 1))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _chart(trend: list[dict[str, Any]]) -> str:
    """An inline SVG of 公示率 per month of decision; months with no counted deliveries leave a gap."""
    width, height, left, bottom, top = 640, 240, 48, 32, 16
    if not trend:
        return "<p>No months to chart.</p>"
    step = (width - left - 16) / max(len(trend), 1)
    parts = [
        f'<svg role="img" aria-label="公示率 by month" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for pct in (0, 50, 100):
        y = top + (height - top - bottom) * (1 - pct / 100)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{pct}%</text>')
    for index, point in enumerate(trend):
        x = left + step * index + step * 0.2
        label = html.escape(point["month"])
        parts.append(
            f'<text x="{x + step * 0.3:.1f}" y="{height - 12}" text-anchor="middle" font-size="10">{label}</text>'
        )
        if point["rate"] is None:
            continue
        bar = (height - top - bottom) * point["rate"]
        y = height - bottom - bar
        parts.append(
            f'<rect class="bar" data-month="{label}" data-rate="{point["rate"]:.4f}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{step * 0.6:.1f}" height="{bar:.1f}" fill="#1f4e79">'
            f"<title>{label}: {percent(point['rate'])}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any]) -> bytes:
    e = html.escape
    total = report["summary"]["total"]
    departments = [[d["department"], *_count_cells(d["counts"])] for d in report["by_department"]]
    targets = [[target_label(t), *_count_cells(c)] for t, c in report["summary"]["by_target"].items()]
    overdue = [
        [i["department"], kind_label(i["kind"]), i["source_id"], target_label(i["target"]), i["due_date"]]
        for i in report["overdue"]
    ]
    quotas = [
        [q["department"], q["red"], q["black"], q["commitments"], "是" if q["met"] else "否"] for q in report["quotas"]
    ]
    definitions = "".join(f"<li>{e(text)}</li>" for text in report["definitions"].values())
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>公示率报告 {e(report["period"])}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }}
th {{ background: #1f4e79; color: #fff; }} td:first-child {{ text-align: left; }}
.rate {{ font-size: 2.5rem; font-weight: bold; color: #1f4e79; }}
</style></head><body>
<h1>公示率报告 {e(report["period"])}</h1>
<p>决定日期 {e(report["from"])} 至 {e(report["to"])}；统计截至 {e(report["as_of"])}；
生成于 {e(report["generated_at"])}</p>
<p class="rate" id="rate">{percent(total["rate"])}</p>
<p>按时 {total["on_time"]} · 超期 {total["late"]} · 逾期 {total["overdue"]} ·
待公示 {total["pending"]} (不计入)</p>
<h2>公示率趋势</h2>{_chart(report["trend"])}
<h2>按科室</h2>{_table(["科室", *COUNT_HEADERS], departments)}
<h2>按目标平台</h2>{_table(["目标平台", *COUNT_HEADERS], targets)}
<h2>逾期未公示 ({len(overdue)})</h2>{_table(["科室", "类别", "业务编号", "目标平台", "公示期限"], overdue)}
<h2>联合奖惩</h2>{_table(joint.HEADERS, joint.rows(report))}
<h2>年度任务 ({report["from"][:4]})</h2>{_table(["科室", "红名单推送", "黑名单推送", "信用承诺", "达标"], quotas)}
<h2>口径</h2><ul>{definitions}</ul>
</body></html>
"""
    return page.encode("utf-8")
