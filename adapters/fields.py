"""Canonical records → the national standard's field codes (STANDARDS.md §1.2–1.3, PROTOCOLS.md CN/MD tables).

National, provincial and municipal platforms all speak these codes; only the envelope differs. Values follow
PROTOCOLS.md: dates ``YYYY/MM/DD``, money as a plain decimal string in 万元, enumerations as their Chinese text,
several 处罚类别 joined by the ASCII ``;``, other document types as ``其他-…``, a withdrawal's reason as its
Chinese text (撤销, 信用修复, 公示期满, 其他). ``XK_ZT`` is the standard's one-character
status code (``1`` 有效, ``2`` 无效). Empty optional fields are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.base import Holding, Item, Operation
from schemas.enums import (
    ARTICLE_KINDS,
    CaseType,
    CommitmentType,
    CounterpartCategory,
    Disclosure,
    Fulfilment,
    IdType,
    Kind,
    LicenceCategory,
    ListAction,
    ListType,
    PenaltyCategory,
    WithdrawReason,
)

TYPE_CODES = {
    Kind.LICENCE: "XK",
    Kind.PENALTY: "CF",
    Kind.COMMITMENT: "CN",
    Kind.LIST_CHANGE: "MD",
    Kind.CASE: "AL",  # articles: to 信用怀化 only (PROTOCOLS.md "Articles")
    Kind.NEWS: "DT",
}
KIND_OF_TYPE = {code: kind for kind, code in TYPE_CODES.items()}
LIST_ACTION_TEXT = {ListAction.ADD: "列入", ListAction.REMOVE: "移出"}  # MD_CZ's own words
LICENCE_STATUS_CODE = {"valid": "1", "invalid": "2"}
CATEGORY_SEPARATOR = ";"  # PROTOCOLS.md: the ASCII semicolon, on every platform (the portal included)
WITHDRAW_REASON_TEXT = {
    WithdrawReason.REVOKED: "撤销",
    WithdrawReason.CREDIT_REPAIR: "信用修复",
    WithdrawReason.PERIOD_ENDED: "公示期满",
    WithdrawReason.OTHER: "其他",
}


def day(value: str | None) -> str | None:
    return None if value is None else value.replace("-", "/")


def reason_text(reason: str | None) -> str | None:
    """A withdrawal's reason as the platforms take it: the Chinese text (PROTOCOLS.md), never our English code."""
    if reason is None:
        return None
    try:
        return WITHDRAW_REASON_TEXT[WithdrawReason(reason)]
    except ValueError:  # not one of ours: the platforms' catch-all rather than a word they refuse
        return WITHDRAW_REASON_TEXT[WithdrawReason.OTHER]


def penalty_categories_text(codes: Sequence[str]) -> str:
    return CATEGORY_SEPARATOR.join(PenaltyCategory.from_code(x).label for x in codes)


def _label(enum: Any) -> Callable[[str | None], str | None]:
    return lambda code: None if code is None else enum.from_code(code).label


def id_type_text(code: str | None, other: str | None) -> str | None:
    if code is None:
        return None
    return f"其他-{other}" if code == IdType.OTHER.value else IdType.from_code(code).label


def subject_code(cp: Mapping[str, Any]) -> str | None:
    """The one identifier CN_CNRDM / MD_ZTDM carry: the USCC, else the ID document number."""
    return cp.get("uscc") or cp.get("id_number")


def _counterpart(prefix: str, cp: Mapping[str, Any], *, frdb: str) -> dict[str, str | None]:
    return {
        f"{prefix}_XDR_MC": cp["name"],
        f"{prefix}_XDR_LB": CounterpartCategory.from_code(cp["category"]).label,
        f"{prefix}_XDR_SHXYM": cp.get("uscc"),
        frdb: cp.get("legal_representative"),
        f"{prefix}_FR_ZJLX": id_type_text(
            cp.get("legal_representative_id_type"), cp.get("legal_representative_id_type_other")
        ),
        f"{prefix}_FR_ZJHM": cp.get("legal_representative_id_number"),
        f"{prefix}_XDR_ZJLX": id_type_text(cp.get("id_type"), cp.get("id_type_other")),
        f"{prefix}_XDR_ZJHM": cp.get("id_number"),
    }


def licence(c: Mapping[str, Any]) -> dict[str, str | None]:
    return _counterpart("XK", c["counterpart"], frdb="XK_FRDB") | {
        "XK_XKWS": c["document_name"],
        "XK_WSH": c["document_number"],
        "XK_XKLB": _label(LicenceCategory)(c["licence_category"]),
        "XK_XKZS": c.get("certificate_name"),
        "XK_XKBH": c.get("licence_number"),
        "XK_NR": c["content"],
        "XK_JDRQ": day(c["decision_date"]),
        "XK_YXQZ": day(c["valid_from"]),
        "XK_YXQZI": day(c["valid_to"]),
        "XK_XKJG": c["authority"],
        "XK_XKJGDM": c["authority_uscc"],
        "XK_ZT": LICENCE_STATUS_CODE[c["status"]],
        "XK_LYDW": c["source_unit"],
        "XK_LYDWDM": c["source_unit_uscc"],
        "BZ": c.get("remarks"),
    }


def penalty(c: Mapping[str, Any]) -> dict[str, str | None]:
    return _counterpart("CF", c["counterpart"], frdb="CF_FRDB") | {
        "CF_WSH": c["decision_number"],
        "CF_WFXW": c["violation_type"],
        "CF_SY": c["violation_facts"],
        "CF_YJ": c["legal_basis"],
        "CF_CFLB": penalty_categories_text(c["penalty_categories"]),
        "CF_NR": c["content"],
        "CF_NR_FK": c.get("fine_amount"),
        "CF_NR_WFFF": c.get("confiscated_amount"),
        "CF_NR_ZKDX": c.get("suspended_licence"),
        "CF_JDRQ": day(c["decision_date"]),
        "CF_YXQ": day(c["valid_until"]),
        "CF_GSJZQ": day(c.get("publish_until")),
        "CF_CFJG": c["authority"],
        "CF_CFJGDM": c["authority_uscc"],
        "CF_SJLY": c["source_unit"],
        "CF_SJLYDM": c["source_unit_uscc"],
        "BZ": c.get("remarks"),
    }


def serial_of(record_id: str) -> int:
    """The serial part of a 承诺编码: the last six digits of the record id."""
    digits = "".join(ch for ch in record_id if ch.isdigit())
    return int(digits[-6:] or 0)


def commitment_code(area: str, commitment_date: str, serial: int) -> str:
    """承诺编码: 6-digit area + YYYYMMDD + 6-digit serial (STANDARDS.md §2.1)."""
    return f"{area}{commitment_date.replace('-', '')}{serial % 1_000_000:06d}"


def commitment(c: Mapping[str, Any], *, code: str) -> dict[str, str | None]:
    cp = c["counterpart"]
    return {
        "CN_BM": code,
        "CN_CNRMC": cp["name"],
        "CN_CNRLB": CounterpartCategory.from_code(cp["category"]).label,
        "CN_CNRDM": subject_code(cp),
        "CN_LX": _label(CommitmentType)(c["commitment_type"]),
        "CN_SY": c["matter"],
        "CN_NR": c["content"],
        "CN_WNZR": c["liability"],
        "CN_ZCRQ": day(c["commitment_date"]),
        "CN_YXQ": day(c.get("valid_until")),
        "CN_LXZT": _label(Fulfilment)(c["fulfilment"]),
        "CN_WLXNR": c.get("unfulfilled_content"),
        "CN_ZJNR": c.get("liability_action"),
        "CN_SLDW": c["accepting_unit"],
        "CN_SLDWDM": c["accepting_unit_uscc"],
        "CN_GKLX": _label(Disclosure)(c["disclosure"]),
        "BZ": c.get("remarks"),
    }


def list_change(c: Mapping[str, Any]) -> dict[str, str | None]:
    cp = c["counterpart"]
    return {
        "MD_MC": c["list_name"],
        "MD_LB": ListType.from_code(c["list"]).label,
        "MD_CZ": LIST_ACTION_TEXT[ListAction.from_code(c["action"])],
        "MD_ZTMC": cp["name"],
        "MD_ZTLB": CounterpartCategory.from_code(cp["category"]).label,
        "MD_ZTDM": subject_code(cp),
        "MD_RDWH": c["document_number"],
        "MD_LY": c["reason"],
        "MD_YJ": c["basis"],
        "MD_RDBM": c["deciding_unit"],
        "MD_RDBMDM": c["deciding_unit_uscc"],
        "MD_RQ": day(c["effective_date"]),
        "MD_YXQ": day(c.get("expiry_date")),
        "BZ": c.get("remarks"),
    }


def article(c: Mapping[str, Any]) -> dict[str, str | None]:
    """An article's WZ_* fields (信用怀化); the body is the HTML as cleaned at ingest, the portal's allow-list."""
    return {
        "WZ_BT": c["title"],
        "WZ_ZY": c.get("summary"),
        "WZ_ZW": c["content_html"],
        "WZ_FBRQ": day(c["published_on"]),
        "WZ_LYDW": c["source_unit"],
        "WZ_ZZ": c.get("author"),
        "WZ_ALLX": _label(CaseType)(c.get("case_type")),
    }


def field_codes(kind: Kind, content: Mapping[str, Any], *, area: str, serial: int) -> dict[str, str]:
    """The record as {code: value}, empty optional fields left out."""
    if kind in ARTICLE_KINDS:
        mapped = article(content)
    elif kind is Kind.LICENCE:
        mapped = licence(content)
    elif kind is Kind.PENALTY:
        mapped = penalty(content)
    elif kind is Kind.COMMITMENT:
        mapped = commitment(content, code=commitment_code(area, content["commitment_date"], serial))
    else:
        mapped = list_change(content)
    return {k: v for k, v in mapped.items() if v not in (None, "")}


def item_codes(item: Item, *, area: str) -> dict[str, str]:
    """An item's field codes as the three platforms hold and list them (reconciliation compares their digest)."""
    return field_codes(item.kind, item.content, area=area, serial=serial_of(item.record_id))


def envelope(item: Item, *, area: str, data_key: str, with_reason: bool) -> dict[str, Any]:
    """The JSON platforms' item: key, record id, op, type, and the field codes (upserts) or the reason."""
    entry: dict[str, Any] = {
        "key": item.key,
        "record_id": item.record_id,
        "op": item.operation.value,
        "type": TYPE_CODES[item.kind],
    }
    if item.operation is Operation.UPSERT:
        entry[data_key] = item_codes(item, area=area)
    elif with_reason and item.reason:
        entry["reason"] = reason_text(item.reason)
    return entry


def json_holding(entry: dict[str, Any], kind: Kind, data_key: str) -> Holding:
    """A holding as the JSON platforms list it (``data_key``: where its field codes are)."""
    return Holding(
        str(entry["record_id"]),
        str(entry.get("key") or ""),
        KIND_OF_TYPE.get(str(entry.get("type")), kind),
        entry.get("status") == "public",
        entry.get(data_key) or {},
        entry.get("updated_at"),
    )
