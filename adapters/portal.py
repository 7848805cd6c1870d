"""portal: the bureau website's credit column (PROTOCOLS.md "portal"): one CMS notice per licence or penalty, and
per article (典型案例 in column ``dxal``, 工作动态 in ``gzdt``, with its cleaned ``content_html`` beside the fields).

Notices are public, so natural persons are masked exactly as PROTOCOLS.md says: a name keeps its surname
(``张*``, ``欧阳*``), an 18-character ID number its first 4 and last 4 characters, other document numbers their
last 4. An individual business keeps its name, but its operator's ID number is a person's and is masked too.
Organisations, their codes and their legal representatives are shown in full. The notice's external id is the
record id, so a correction updates the same notice and a withdrawal deletes it.

Values follow PROTOCOLS.md's common rules like every platform's: dates ``YYYY/MM/DD`` (``2099/12/31`` is
long-term, the portal renders it), several 处罚类别 joined by the ASCII ``;``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from adapters import fields, replies
from adapters.base import (
    Accepted,
    Exchange,
    Holding,
    HoldingsPage,
    Item,
    Operation,
    Outcome,
    Plan,
    Rejected,
    Reply,
    ReplyError,
    Request,
    next_page,
)
from schemas.calendar import ZONE
from schemas.enums import ARTICLE_KINDS, CaseType, CounterpartCategory, IdType, Kind, LicenceCategory, LicenceStatus
from schemas.identifiers import mask_id_number

COLUMNS = {Kind.LICENCE: "xzxk", Kind.PENALTY: "xzcf", Kind.CASE: "dxal", Kind.NEWS: "gzdt"}
KIND_OF_COLUMN = {v: k for k, v in COLUMNS.items()}
PAGE_SIZE = 100

# 复姓 that keep both characters when a name is masked (欧阳修 → 欧阳*).
COMPOUND_SURNAMES = frozenset(
    (
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "轩辕",
        "令狐",
        "钟离",
        "闻人",
        "澹台",
        "呼延",
        "端木",
        "南宫",
        "西门",
        "百里",
        "独孤",
        "赫连",
        "万俟",
        "申屠",
        "太史",
        "东郭",
        "公羊",
        "濮阳",
        "淳于",
        "单于",
        "仲孙",
        "宗政",
        "拓跋",
    )
)


def mask_name(name: str) -> str:
    surname = name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]
    return surname + "*"


def mask_document(id_type: str | None, number: str) -> str:
    if id_type == IdType.RESIDENT_ID.value or len(number) == 18:
        return mask_id_number(number)
    return "*" * max(len(number) - 4, 0) + number[-4:]


@dataclass(frozen=True)
class PortalConfig:
    token: str
    max_items: int = 200  # as the settings default: notices go one request each whatever the batch


class Portal:
    name = "portal"
    two_stage = False

    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.max_items = config.max_items

    def expected_fields(self, item: Item) -> dict[str, str]:
        """What the portal should list for ``item`` (label → value, natural persons masked)."""
        notice = self.notice(item, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # the date is not among the fields
        return {f["label"]: f["value"] for f in notice["fields"]}

    def notice(self, item: Item, now: dt.datetime) -> dict[str, Any]:
        c = item.content
        if item.kind in ARTICLE_KINDS:
            return _article_notice(item.kind, c)
        subject = _subject(c["counterpart"])
        if item.kind is Kind.LICENCE:
            title = f"{subject[0][1]}行政许可信息公示（{c['document_number']}）"
            rows = subject + _licence_rows(c)
        else:
            title = f"{subject[0][1]}行政处罚信息公示（{c['decision_number']}）"
            rows = subject + _penalty_rows(c)
        return {
            "column": COLUMNS[item.kind],
            "title": title,
            "published_on": fields.day(now.astimezone(ZONE).date().isoformat()),
            "fields": [{"label": label, "value": value} for label, value in rows if value],
        }

    def plan(self, items: Sequence[Item], *, now: dt.datetime) -> Plan:
        exchanges, refused = [], []
        for item in items:
            path = f"/cms/api/notices/{quote(item.record_id, safe='')}"
            if item.kind not in COLUMNS:
                refused.append(Rejected(item.key, "not_applicable", f"the portal publishes no {item.kind.value}"))
            elif item.operation is Operation.WITHDRAW:
                exchanges.append(Exchange(Request("DELETE", path), (item.key,)))
            else:
                body = orjson.dumps(self.notice(item, now))
                exchanges.append(
                    Exchange(Request("PUT", path, {"Content-Type": "application/json"}, body), (item.key,))
                )
        return Plan(exchanges, refused)

    def holdings_exchange(self, kind: Kind, page: str | None, *, now: dt.datetime) -> Exchange:
        query = urlencode({"column": COLUMNS[kind], "page": page or "1", "size": PAGE_SIZE})
        return Exchange(Request("GET", f"/cms/api/notices?{query}"), ())

    def interpret(self, exchange: Exchange, reply: Reply) -> list[Outcome]:
        keys = exchange.keys
        transient = replies.transient_http(keys, reply)
        if transient is not None:
            return transient
        if exchange.request.method == "DELETE":
            if reply.status in (200, 204):
                return [Accepted(k, "deleted") for k in keys]
            if reply.status == 404:  # the notice is not there: the withdrawal's goal holds
                return [Accepted(k, "absent") for k in keys]
        try:
            body = replies.json_body(reply)
        except ReplyError as exc:
            return replies.unreadable(keys, exc)
        if reply.status in (200, 201) and isinstance(body, dict) and body.get("notice_id"):
            return [Accepted(k, str(body.get("url") or body["notice_id"])) for k in keys]
        message = body.get("message") if isinstance(body, dict) else None
        return [Rejected(k, str(reply.status), str(message or f"HTTP {reply.status}")) for k in keys]

    def interpret_holdings(self, kind: Kind, reply: Reply, page: str | None = None) -> HoldingsPage:
        body = replies.json_body(reply)
        if reply.status != 200 or not isinstance(body, dict):
            raise ReplyError("holdings_failed", f"holdings query failed: HTTP {reply.status}")
        total = int(body.get("total") or 0)
        holdings = [
            Holding(
                str(n["external_id"]),
                "",
                KIND_OF_COLUMN.get(str(n.get("column")), kind),
                True,
                {f["label"]: f["value"] for f in n.get("fields") or []},
                n.get("updated_at"),
            )
            for n in body.get("items") or []
        ]
        return HoldingsPage(holdings, next_page(page, PAGE_SIZE, total, len(holdings)), total)


def _article_notice(kind: Kind, c: Mapping[str, Any]) -> dict[str, Any]:
    """An article as the portal shows it: its own title and date, the cleaned HTML, and a few labelled fields;
    a case's counterpart as a licence's or penalty's (natural persons masked)."""
    rows: list[tuple[str, str | None]] = [
        ("摘要", c.get("summary")),
        ("来源单位", c["source_unit"]),
        ("作者", c.get("author")),
    ]
    if kind is Kind.CASE:
        rows.append(("案例类型", CaseType.from_code(c["case_type"]).label))
        if c.get("counterpart"):
            rows += _subject(c["counterpart"])
    return {
        "column": COLUMNS[kind],
        "title": c["title"],
        "published_on": fields.day(c["published_on"]),
        "content_html": c["content_html"],
        "fields": [{"label": label, "value": value} for label, value in rows if value],
    }


def _subject(cp: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    category = CounterpartCategory.from_code(cp["category"])
    person = category is CounterpartCategory.NATURAL_PERSON
    number = cp.get("id_number")
    return [
        ("行政相对人名称", mask_name(cp["name"]) if person else cp["name"]),
        ("行政相对人类别", category.label),
        ("统一社会信用代码", cp.get("uscc")),
        ("法定代表人", _representative(category, cp.get("legal_representative"))),
        ("证件类型", fields.id_type_text(cp.get("id_type"), cp.get("id_type_other"))),
        ("证件号码", mask_document(cp.get("id_type"), number) if number else None),
    ]


def _representative(category: CounterpartCategory, name: str | None) -> str | None:
    if name is None or category is CounterpartCategory.NATURAL_PERSON:
        return None
    # an organisation's legal representative is public; an individual business's operator is a private person
    return name if category is CounterpartCategory.LEGAL_ENTITY else mask_name(name)


def _licence_rows(c: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    return [
        ("行政许可决定文书名称", c["document_name"]),
        ("行政许可决定文书号", c["document_number"]),
        ("许可类别", LicenceCategory.from_code(c["licence_category"]).label),
        ("许可证书名称", c.get("certificate_name")),
        ("许可编号", c.get("licence_number")),
        ("许可内容", c["content"]),
        ("许可决定日期", fields.day(c["decision_date"])),
        ("有效期自", fields.day(c["valid_from"])),
        ("有效期至", fields.day(c["valid_to"])),  # 2099/12/31 is the common rules' 长期
        ("许可机关", c["authority"]),
        ("当前状态", LicenceStatus.from_code(c["status"]).label),
        ("备注", c.get("remarks")),
    ]


def _penalty_rows(c: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    return [
        ("行政处罚决定书文号", c["decision_number"]),
        ("违法行为类型", c["violation_type"]),
        ("违法事实", c["violation_facts"]),
        ("处罚依据", c["legal_basis"]),
        ("处罚类别", fields.penalty_categories_text(c["penalty_categories"])),
        ("处罚内容", c["content"]),
        ("罚款金额（万元）", c.get("fine_amount")),
        ("没收违法所得、没收非法财物的金额（万元）", c.get("confiscated_amount")),
        ("暂扣或吊销证照名称及编号", c.get("suspended_licence")),
        ("处罚决定日期", fields.day(c["decision_date"])),
        ("处罚机关", c["authority"]),
        ("备注", c.get("remarks")),
    ]
