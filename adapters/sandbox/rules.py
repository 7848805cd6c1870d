"""The platforms' own data-quality checks, written from STANDARDS.md §1 and PROTOCOLS.md (not from adapters/).

A record is a {field code: text} mapping; ``check`` returns the first problem as (code, message) in the
platforms' codes: 2001 required field missing, 2002 identifier invalid, 2003 date invalid or out of order,
2004 value not in list, 2005 length exceeded. Field lengths come from the shipped XSD, the shared contract.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from lxml import etree
from stdnum.cn import ric, uscc

REQUIRED = {
    "XK": (
        "XK_XDR_MC",
        "XK_XDR_LB",
        "XK_XKWS",
        "XK_WSH",
        "XK_XKLB",
        "XK_NR",
        "XK_JDRQ",
        "XK_YXQZ",
        "XK_YXQZI",
        "XK_XKJG",
        "XK_XKJGDM",
        "XK_ZT",
        "XK_LYDW",
        "XK_LYDWDM",
    ),
    "CF": (
        "CF_XDR_MC",
        "CF_XDR_LB",
        "CF_WSH",
        "CF_WFXW",
        "CF_SY",
        "CF_YJ",
        "CF_CFLB",
        "CF_NR",
        "CF_JDRQ",
        "CF_YXQ",
        "CF_CFJG",
        "CF_CFJGDM",
        "CF_SJLY",
        "CF_SJLYDM",
    ),
    "CN": (
        "CN_BM",
        "CN_CNRMC",
        "CN_CNRLB",
        "CN_CNRDM",
        "CN_LX",
        "CN_SY",
        "CN_NR",
        "CN_WNZR",
        "CN_ZCRQ",
        "CN_LXZT",
        "CN_SLDW",
        "CN_SLDWDM",
        "CN_GKLX",
    ),
    "MD": (
        "MD_MC",
        "MD_LB",
        "MD_CZ",
        "MD_ZTMC",
        "MD_ZTLB",
        "MD_ZTDM",
        "MD_RDWH",
        "MD_LY",
        "MD_YJ",
        "MD_RDBM",
        "MD_RDBMDM",
        "MD_RQ",
    ),
}
SUBJECT_KINDS = ("法人及非法人组织", "自然人", "个体工商户")
ID_TYPES = ("身份证", "护照号", "港澳居民来往内地通行证", "台湾居民来往大陆通行证", "外国人永久居留身份证")
LISTS = {
    "XK_XDR_LB": SUBJECT_KINDS,
    "CF_XDR_LB": SUBJECT_KINDS,
    "CN_CNRLB": SUBJECT_KINDS,
    "MD_ZTLB": SUBJECT_KINDS,
    "XK_XKLB": ("普通", "特许", "认可", "核准", "登记", "其他"),
    "XK_ZT": ("1", "2"),
    "CN_LX": ("审批替代型", "容缺受理型", "证明事项型", "信用修复型", "行业自律型", "主动型", "其他"),
    "CN_LXZT": ("待履行", "全部履行", "部分履行", "全部未履行"),
    "CN_GKLX": ("可向社会公开", "特定范围内公开", "不可公开"),
    "MD_LB": ("红名单", "黑名单"),
    "MD_CZ": ("列入", "移出"),
}
PENALTY_KINDS = (
    "警告",
    "通报批评",
    "罚款",
    "没收违法所得",
    "没收非法财物",
    "暂扣许可证件",
    "降低资质等级",
    "吊销许可证件",
    "限制开展生产经营活动",
    "责令停产停业",
    "责令关闭",
    "限制从业",
    "行政拘留",
    "其他",
)
USCC_FIELDS = (
    "XK_XDR_SHXYM",
    "XK_XKJGDM",
    "XK_LYDWDM",
    "CF_XDR_SHXYM",
    "CF_CFJGDM",
    "CF_SJLYDM",
    "CN_SLDWDM",
    "MD_RDBMDM",
)
DATE_ORDER = (
    ("XK_YXQZ", "XK_YXQZI"),
    ("CF_JDRQ", "CF_YXQ"),
    ("CF_JDRQ", "CF_GSJZQ"),
    ("CN_ZCRQ", "CN_YXQ"),
    ("MD_RQ", "MD_YXQ"),
)
WITHDRAW_REASONS = ("撤销", "信用修复", "公示期满", "其他")
# The portal's notice labels that hold dates, and the one that holds the 处罚类别 (PROTOCOLS.md: the common rules
# hold for the portal too).
NOTICE_DATES = ("许可决定日期", "有效期自", "有效期至", "处罚决定日期")
NOTICE_CATEGORIES = "处罚类别"
_DATE = re.compile(r"\d{4}/\d{2}/\d{2}")
_MONEY = re.compile(r"\d{1,12}(\.\d{1,6})?")

Problem = tuple[str, str]


DATES = frozenset(
    {"XK_JDRQ", "XK_YXQZ", "XK_YXQZI", "CF_JDRQ", "CF_YXQ", "CF_GSJZQ", "CN_ZCRQ", "CN_YXQ", "MD_RQ", "MD_YXQ"}
)


@cache
def max_lengths() -> dict[str, int | None]:
    """{field code: max length (None: not a text field)} for every code the contract XSD declares."""
    xsd = resources.files("schemas") / "contract" / "provincial-exchange.xsd"
    tree = etree.fromstring(xsd.read_bytes(), etree.XMLParser(resolve_entities=False, no_network=True))
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    found = {}
    for simple in tree.iterfind("xs:simpleType", ns):
        name = simple.get("name") or ""
        limit = simple.find(".//xs:maxLength", ns)
        if name.startswith("F_"):
            found[name[2:]] = None if limit is None else int(limit.get("value") or 0)
    return found


@lru_cache(maxsize=4096)  # a batch's items share a few dates: each is parsed once, not once per field per item
def _date(value: str) -> dt.date | None:
    if not _DATE.fullmatch(value):
        return None
    try:
        return dt.date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        return None


@cache
def _uscc_ok(code: str) -> bool:
    return bool(uscc.is_valid(code))


@cache
def _id_number_ok(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        ric.get_birth_date(number)
    except Exception:
        return False
    return ric.calc_check_digit(number) == number[17]


def _in_list(code: str, value: str) -> bool:
    if code.endswith(("_ZJLX",)):
        return value in ID_TYPES or value.startswith("其他-")
    if code == "CF_CFLB":
        return all(p in PENALTY_KINDS or p.startswith("其他-") for p in value.split(";"))
    allowed = LISTS.get(code)
    return allowed is None or value in allowed or (code in ("XK_XKLB", "CN_LX") and value.startswith("其他"))


@cache
def _traits(code: str) -> tuple[bool, bool, str | None, bool, bool]:
    """Which per-field checks apply to a field code, worked out once per code rather than once per item
    (the provincial sandbox checks 500 items of some 20 fields per message)."""
    listed = code.endswith("_ZJLX") or code == "CF_CFLB" or code in LISTS
    id_type_field = code.replace("ZJHM", "ZJLX") if code.endswith("_ZJHM") else None
    return listed, code in USCC_FIELDS, id_type_field, code in DATES, code.endswith(("_FK", "_WFFF"))


def check(type_code: str, data: Mapping[str, Any]) -> Problem | None:
    if type_code not in REQUIRED:
        return "2004", f"unknown record type {type_code!r}"
    lengths = max_lengths()
    for code, value in data.items():
        if code not in lengths:
            return "2004", f"unknown field code {code}"
        if not isinstance(value, str):
            return "2004", f"{code} must be text"
        limit = lengths[code]
        if limit is not None and len(value) > limit:
            return "2005", f"{code} exceeds {limit} characters"
    for code in REQUIRED[type_code]:
        if not data.get(code):
            return "2001", f"required field {code} is missing"
    prefix = type_code
    subject = data.get(f"{prefix}_XDR_LB") or data.get("CN_CNRLB") or data.get("MD_ZTLB")
    if type_code in ("XK", "CF"):
        if subject == "法人及非法人组织" and not (data.get(f"{prefix}_XDR_SHXYM") and data.get(f"{prefix}_FRDB")):
            return "2001", f"法人及非法人组织 needs {prefix}_XDR_SHXYM and {prefix}_FRDB"
        if subject == "个体工商户" and not (data.get(f"{prefix}_XDR_SHXYM") or data.get(f"{prefix}_XDR_ZJHM")):
            return "2001", f"个体工商户 needs {prefix}_XDR_SHXYM or {prefix}_XDR_ZJHM"
        if subject == "自然人" and not (data.get(f"{prefix}_XDR_ZJLX") and data.get(f"{prefix}_XDR_ZJHM")):
            return "2001", f"自然人 needs {prefix}_XDR_ZJLX and {prefix}_XDR_ZJHM"
        if "罚款" in data.get("CF_CFLB", "").split(";") and not data.get("CF_NR_FK"):
            return "2001", "罚款 needs CF_NR_FK"
    for code, value in data.items():
        listed, is_uscc, id_type_field, is_date, is_money = _traits(code)
        if listed and not _in_list(code, value):
            return "2004", f"{code} value {value!r} is not in the standard's list"
        if is_uscc and not _uscc_ok(value):
            return "2002", f"{code} is not a valid 统一社会信用代码"
        if id_type_field and data.get(id_type_field) == "身份证" and not _id_number_ok(value):
            return "2002", f"{code} is not a valid 身份证 number"
        if is_date and _date(value) is None:
            return "2003", f"{code} must be a real date written YYYY/MM/DD"
        if is_money and not _MONEY.fullmatch(value):
            return "2004", f"{code} must be an amount in 万元 with at most 6 decimals"
    if data.get("CN_BM") and not re.fullmatch(r"\d{20}", data["CN_BM"]):
        return "2004", "CN_BM must be 20 digits"
    if (
        data.get("CN_CNRLB") in ("法人及非法人组织", "个体工商户")
        and len(data.get("CN_CNRDM", "")) == 18
        and not _uscc_ok(data["CN_CNRDM"])
        and not _id_number_ok(data["CN_CNRDM"])
    ):
        return "2002", "CN_CNRDM is neither a valid 统一社会信用代码 nor a 身份证 number"
    for start, end in DATE_ORDER:
        if data.get(start) and data.get(end) and data[end] < data[start]:
            return "2003", f"{end} is earlier than {start}"
    return None


def check_reason(reason: str | None) -> Problem | None:
    """A withdrawal's reason, when given, is one of the Chinese texts of PROTOCOLS.md."""
    if reason is None or reason in WITHDRAW_REASONS:
        return None
    return "2004", f"withdrawal reason {reason!r} is not one of {', '.join(WITHDRAW_REASONS)}"


def check_notice(published_on: str, values: Mapping[str, str]) -> Problem | None:
    """A portal notice's values follow the common rules: dates YYYY/MM/DD, 处罚类别 joined by the ASCII ';'."""
    if _date(published_on) is None:
        return "2003", f"published_on {published_on!r} must be a real date written YYYY/MM/DD"
    for label in NOTICE_DATES:
        if label in values and _date(values[label]) is None:
            return "2003", f"{label} {values[label]!r} must be a real date written YYYY/MM/DD"
    categories = values.get(NOTICE_CATEGORIES)
    if categories is not None and not _in_list("CF_CFLB", categories):
        return "2004", f"{NOTICE_CATEGORIES} {categories!r} must be the standard's kinds joined by ';'"
    return None
