"""The national template's Chinese columns and the canonical record fields they fill. Pure: no I/O.

Spreadsheets exported by the bureau's older systems follow the 双公示 template (STANDARDS.md §1.2–1.3): Chinese
column names, sometimes with the template's code suffix (``行政相对人代码_1(统一社会信用代码)``), enumeration values
as Chinese text, dates as ``YYYY/MM/DD`` or spreadsheet date cells. This module turns one such row into the JSON
values the API accepts, so that the row then passes exactly the API's validation (``schemas.validation``);
nothing here decides whether a value is valid, only where it goes and how it is written.

Template columns the canonical record has no place for (工商注册号, 组织机构代码 and the other 行政相对人代码_2…_6)
are recognised and left out; an unknown column is reported, not guessed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from schemas.enums import Kind
from schemas.records import DATE_FIELDS

SOURCE_ID = "业务编号"
DEPARTMENT = "责任科室"
REASON = "错误原因"  # the errors file's extra column; ignored when a corrected errors file is imported again
LONG_TERM = "2099-12-31"  # the national standard's 长期

# Where the counterpart's columns go; the same in every kind.
_COUNTERPART = {
    "行政相对人名称": "counterpart.name",
    "行政相对人类别": "counterpart.category",
    "统一社会信用代码": "counterpart.uscc",
    "行政相对人代码_1": "counterpart.uscc",
    "法定代表人": "counterpart.legal_representative",
    "法定代表人证件类型": "counterpart.legal_representative_id_type",
    "法定代表人证件号码": "counterpart.legal_representative_id_number",
    "法定代表人身份证号": "counterpart.legal_representative_id_number",
    "证件类型": "counterpart.id_type",
    "证件号码": "counterpart.id_number",
}
_IGNORED = (
    "工商注册号",
    "组织机构代码",
    "税务登记号",
    "事业单位证书号",
    "社会组织登记证号",
    "行政相对人代码_2",
    "行政相对人代码_3",
    "行政相对人代码_4",
    "行政相对人代码_5",
    "行政相对人代码_6",
    REASON,
)
_COMMON = {
    SOURCE_ID: "source_id",
    DEPARTMENT: "department",
    "数据来源单位": "source_unit",
    "数据来源单位统一社会信用代码": "source_unit_uscc",
    "备注": "remarks",
}

COLUMNS: dict[Kind, dict[str, str]] = {
    Kind.LICENCE: {
        **_COMMON,
        **_COUNTERPART,
        "行政许可决定文书名称": "document_name",
        "行政许可决定文书号": "document_number",
        "许可类别": "licence_category",
        "许可证书名称": "certificate_name",
        "许可编号": "licence_number",
        "许可内容": "content",
        "许可决定日期": "decision_date",
        "有效期自": "valid_from",
        "有效期至": "valid_to",
        "许可机关": "authority",
        "许可机关统一社会信用代码": "authority_uscc",
        "当前状态": "status",
    },
    Kind.PENALTY: {
        **_COMMON,
        **_COUNTERPART,
        "行政处罚决定书文号": "decision_number",
        "违法行为类型": "violation_type",
        "违法事实": "violation_facts",
        "处罚依据": "legal_basis",
        "处罚类别": "penalty_categories",
        "处罚内容": "content",
        "罚款金额(万元)": "fine_amount",
        "罚款金额": "fine_amount",
        "没收违法所得、没收非法财物的金额(万元)": "confiscated_amount",
        "没收金额(万元)": "confiscated_amount",
        "没收金额": "confiscated_amount",
        "暂扣或吊销证照名称及编号": "suspended_licence",
        "处罚决定日期": "decision_date",
        "处罚有效期": "valid_until",
        "公示截止期": "publish_until",
        "处罚机关": "authority",
        "处罚机关统一社会信用代码": "authority_uscc",
    },
    Kind.COMMITMENT: {
        **_COMMON,
        **_COUNTERPART,
        "承诺人名称": "counterpart.name",
        "承诺人类别": "counterpart.category",
        "承诺人代码": "counterpart.code",  # a USCC, or a 身份证号 for a natural person (resolved below)
        "承诺类型": "commitment_type",
        "承诺事由": "matter",
        "承诺内容": "content",
        "违诺责任": "liability",
        "承诺作出日期": "commitment_date",
        "承诺有效期": "valid_until",
        "承诺履行状态": "fulfilment",
        "未履行的承诺内容": "unfulfilled_content",
        "违诺责任追究内容": "liability_action",
        "承诺受理单位": "accepting_unit",
        "承诺受理单位代码": "accepting_unit_uscc",
        "承诺受理单位统一社会信用代码": "accepting_unit_uscc",
        "公开类型": "disclosure",
        "机关": "authority",
        "机关统一社会信用代码": "authority_uscc",
    },
    Kind.LIST_CHANGE: {
        **_COMMON,
        **_COUNTERPART,
        "名单类型": "list",
        "名单名称": "list_name",
        "变更类型": "action",
        "认定文号": "document_number",
        "认定/移出理由": "reason",
        "依据": "basis",
        "认定部门": "deciding_unit",
        "认定部门统一社会信用代码": "deciding_unit_uscc",
        "认定(移出)日期": "effective_date",
        "有效期限": "expiry_date",
        "机关": "authority",
        "机关统一社会信用代码": "authority_uscc",
    },
}

_ID_TYPES = {"counterpart.id_type": "counterpart.id_type_other"}
_ID_TYPES["counterpart.legal_representative_id_type"] = "counterpart.legal_representative_id_type_other"
_CODE_FIELDS = ("counterpart.uscc", "counterpart.id_number")  # where 承诺人代码 goes
_STATUS_CODES = {"1": "valid", "2": "invalid"}  # 当前状态 as some systems export it (STANDARDS.md §1.4)
_SLASH_DATE = re.compile(r"(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})")
_SPLIT = re.compile(r"[;；,，、]")
_SUFFIX = re.compile(r"^(?P<name>.+?)\((?P<inner>[^()]+)\)$")


class HeaderError(ValueError):
    """The header row cannot be read as the template: the message names the column."""


def normalise_header(text: str) -> str:
    """NFKC (full-width brackets become ASCII), no white space anywhere."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@dataclass(frozen=True, slots=True)
class Layout:
    """Which canonical field each column of this file fills (None: known but unused), by column position."""

    headers: tuple[str, ...]
    fields: tuple[str | None, ...]
    unknown: tuple[str, ...]

    def header_of(self, field: str) -> str | None:
        """The file's own column name for a canonical field path (for the errors file's 错误原因)."""
        path = field.split("[", 1)[0]
        for header, target in zip(self.headers, self.fields, strict=True):
            if target == path or (target == "counterpart.code" and path in _CODE_FIELDS):
                return header
            if target in _ID_TYPES and _ID_TYPES[target] == path:
                return header
        return None


def _lookup(columns: Mapping[str, str], header: str) -> str | None:
    if header in columns:
        return columns[header]
    match = _SUFFIX.match(header)
    if match:  # 行政相对人代码_1(统一社会信用代码), 许可决定日期(XK_JDRQ)
        for part in (match["inner"], match["name"]):
            if part in columns:
                return columns[part]
    return None


def _ignored(header: str) -> bool:
    match = _SUFFIX.match(header)
    parts = (header, match["inner"], match["name"]) if match else (header,)
    return any(part in _IGNORED for part in parts)


def layout(kind: Kind, headers: Sequence[Any]) -> Layout:
    """Read the header row. Refuses a file without 业务编号 or with two columns for one field."""
    columns = {normalise_header(k): v for k, v in COLUMNS[kind].items()}
    names = tuple("" if h is None else str(h).strip() for h in headers)
    fields: list[str | None] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for name in names:
        key = normalise_header(name)
        target = _lookup(columns, key) if key else None
        if target is None and key and not _ignored(key):
            unknown.append(name)
        if target is not None:
            if target in seen:
                raise HeaderError(f"columns {seen[target]!r} and {name!r} both give {target}; keep one")
            seen[target] = name
        fields.append(target)
    if "source_id" not in seen:
        raise HeaderError(f"the header row has no {SOURCE_ID} column (the source system's id of each record)")
    return Layout(names, tuple(fields), tuple(unknown))


def _text(value: Any) -> str:
    if value.__class__ is str:
        return value.strip()  # nearly every cell: a CSV's are all text
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number typed into a text column (许可编号 4312002026)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value).strip()


def _date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = unicodedata.normalize("NFKC", _text(value))
    if text == "长期":
        return LONG_TERM
    match = _SLASH_DATE.fullmatch(text)
    if match:
        return f"{match[1]}-{int(match[2]):02d}-{int(match[3]):02d}"
    return text  # the API's validation names what is wrong with it


def _categories(value: Any) -> list[str]:
    parts = [p.strip() for p in _SPLIT.split(_text(value)) if p.strip()]
    return ["其他" if p.startswith("其他-") else p for p in parts]


def _status(value: Any) -> str:
    text = _text(value)
    return _STATUS_CODES.get(text, text)


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    if "." in path:
        head, tail = path.split(".", 1)
        data.setdefault(head, {})[tail] = value
    else:
        data[path] = value


Writer = Callable[[dict[str, Any], Any], None]


def _writer(field: str) -> Writer:
    """How one column's non-empty cell goes into the record: converted, and put at the field's path."""
    if field in _ID_TYPES:
        other = _ID_TYPES[field]

        def id_type(data: dict[str, Any], value: Any) -> None:
            text = _text(value)
            if text.startswith("其他-") and len(text) > 3:
                _put(data, field, "other")
                _put(data, other, text[3:])
            else:
                _put(data, field, text)

        return id_type
    if field in DATE_FIELDS:
        convert: Callable[[Any], Any] = _date
    elif field == "penalty_categories":
        convert = _categories
    elif field == "status":
        convert = _status
    else:
        convert = _text  # money too: the API reads amounts from text, as written
    head, _, tail = field.partition(".")
    if tail:

        def nested(data: dict[str, Any], value: Any) -> None:
            data.setdefault(head, {})[tail] = convert(value)

        return nested

    def top(data: dict[str, Any], value: Any) -> None:
        data[head] = convert(value)

    return top


@functools.cache
def _plan(fields: tuple[str | None, ...]) -> tuple[tuple[int, Writer], ...]:
    """Each used column's position and writer, worked out once per layout rather than once per cell."""
    return tuple((index, _writer(field)) for index, field in enumerate(fields) if field is not None)


def to_record(kind: Kind, row_layout: Layout, values: Sequence[Any]) -> dict[str, Any]:
    """One row as the JSON values the API would receive; empty cells are absent fields."""
    data: dict[str, Any] = {}
    width = len(values)
    for index, write in _plan(row_layout.fields):
        if index >= width:
            break
        value = values[index]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        write(data, value)
    counterpart = data.get("counterpart")
    if isinstance(counterpart, dict) and "code" in counterpart:  # 承诺人代码: by the committer's category
        code = counterpart.pop("code")
        if counterpart.get("category") in ("自然人", "natural_person"):
            counterpart.setdefault("id_type", "resident_id")
            counterpart.setdefault("id_number", code)
        else:
            counterpart.setdefault("uscc", code)
    return data
