"""Enumerations of the canonical records, each member carrying its national Chinese label.

Sources send either the English code or the Chinese label (CONTRACT.md: "the Chinese label is accepted as an
alias"); adapters send the label, because the national standard transmits the text values (STANDARDS.md §1.4).
"""

from __future__ import annotations

import enum
from typing import Self, TypeVar


class Labelled(enum.StrEnum):
    """A string enumeration whose members also know their Chinese label."""

    label: str

    def __new__(cls, code: str, label: str) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member

    @classmethod
    def parse(cls, raw: str) -> Self | None:
        """The member named by its code or its Chinese label, or None."""
        return _lookup(cls).get(raw.strip().casefold())

    @classmethod
    def from_code(cls, code: str) -> Self:
        """The member with this code (ValueError otherwise); ``cls(code)`` reads as if a label were missing."""
        member = cls._value2member_map_.get(code)
        if member is None:
            raise ValueError(f"{code!r} is not a {cls.__name__} code")
        return member  # type: ignore[return-value]

    @classmethod
    def allowed(cls) -> str:
        return ", ".join(f"{m.value} ({m.label})" for m in cls)


_LOOKUPS: dict[type[Labelled], dict[str, Labelled]] = {}
_E = TypeVar("_E", bound=Labelled)


def _lookup(cls: type[_E]) -> dict[str, _E]:
    table = _LOOKUPS.get(cls)
    if table is None:
        table = {}
        for member in cls:
            table[member.value.casefold()] = member
            table[member.label.casefold()] = member
        _LOOKUPS[cls] = table
    return table  # type: ignore[return-value]


class Kind(Labelled):
    """The record kinds and the article kinds; the value doubles as the URL path segment."""

    LICENCE = "licences", "行政许可"
    PENALTY = "penalties", "行政处罚"
    COMMITMENT = "commitments", "信用承诺"
    LIST_CHANGE = "list-changes", "红黑名单变更"
    CASE = "cases", "典型案例"
    NEWS = "news", "工作动态"


# The decisions and declarations the platforms hold and the 公示率 judges (each has a deadline), and the articles
# (典型案例, 工作动态) that the plan counts as quotas: published on the portal and 信用怀化 only, with no deadline.
RECORD_KINDS: tuple[Kind, ...] = (Kind.LICENCE, Kind.PENALTY, Kind.COMMITMENT, Kind.LIST_CHANGE)
ARTICLE_KINDS: tuple[Kind, ...] = (Kind.CASE, Kind.NEWS)


class CounterpartCategory(Labelled):
    LEGAL_ENTITY = "legal_entity", "法人及非法人组织"
    INDIVIDUAL_BUSINESS = "individual_business", "个体工商户"
    NATURAL_PERSON = "natural_person", "自然人"


class IdType(Labelled):
    RESIDENT_ID = "resident_id", "身份证"
    PASSPORT = "passport", "护照号"
    HK_MACAO_PERMIT = "hk_macao_permit", "港澳居民来往内地通行证"
    TAIWAN_PERMIT = "taiwan_permit", "台湾居民来往大陆通行证"
    FOREIGN_PERMANENT_RESIDENCE = "foreign_permanent_residence", "外国人永久居留身份证"
    OTHER = "other", "其他"


class LicenceCategory(Labelled):
    ORDINARY = "ordinary", "普通"
    FRANCHISE = "franchise", "特许"
    RECOGNITION = "recognition", "认可"
    VERIFICATION = "verification", "核准"
    REGISTRATION = "registration", "登记"
    OTHER = "other", "其他"


class LicenceStatus(Labelled):
    VALID = "valid", "有效"
    INVALID = "invalid", "无效"


class PenaltyCategory(Labelled):
    WARNING = "warning", "警告"
    CIRCULATED_CRITICISM = "circulated_criticism", "通报批评"
    FINE = "fine", "罚款"
    CONFISCATE_ILLEGAL_GAINS = "confiscate_illegal_gains", "没收违法所得"
    CONFISCATE_ILLEGAL_PROPERTY = "confiscate_illegal_property", "没收非法财物"
    SUSPEND_LICENCE = "suspend_licence", "暂扣许可证件"
    LOWER_QUALIFICATION = "lower_qualification", "降低资质等级"
    REVOKE_LICENCE = "revoke_licence", "吊销许可证件"
    RESTRICT_BUSINESS = "restrict_business", "限制开展生产经营活动"
    SUSPEND_BUSINESS = "suspend_business", "责令停产停业"
    ORDER_CLOSURE = "order_closure", "责令关闭"
    RESTRICT_EMPLOYMENT = "restrict_employment", "限制从业"
    DETENTION = "detention", "行政拘留"
    OTHER = "other", "其他"


class CommitmentType(Labelled):
    APPROVAL_SUBSTITUTE = "approval_substitute", "审批替代型"
    TOLERANCE_ACCEPTANCE = "tolerance_acceptance", "容缺受理型"
    CERTIFICATION = "certification", "证明事项型"
    CREDIT_REPAIR = "credit_repair", "信用修复型"
    INDUSTRY_SELF_DISCIPLINE = "industry_self_discipline", "行业自律型"
    VOLUNTARY = "voluntary", "主动型"
    OTHER = "other", "其他"


class Fulfilment(Labelled):
    PENDING = "pending", "待履行"
    FULFILLED = "fulfilled", "全部履行"
    PARTIAL = "partial", "部分履行"
    UNFULFILLED = "unfulfilled", "全部未履行"


class Disclosure(Labelled):
    PUBLIC = "public", "可向社会公开"
    RESTRICTED = "restricted", "特定范围内公开"
    PRIVATE = "private", "不可公开"


class ListType(Labelled):
    RED = "red", "红名单"
    BLACK = "black", "黑名单"


class ListAction(Labelled):
    ADD = "add", "认定"
    REMOVE = "remove", "移出"


class CaseType(Labelled):
    INTEGRITY = "integrity", "守信激励"
    DISHONESTY = "dishonesty", "失信惩戒"


# Labels that mean the same member but are not its canonical label.
_EXTRA_ALIASES: dict[type[Labelled], dict[str, str]] = {
    ListAction: {"列入": "add", "认定/列入": "add"},
    IdType: {"居民身份证": "resident_id", "护照": "passport"},
}


def _install_extra_aliases() -> None:
    for cls, aliases in _EXTRA_ALIASES.items():
        table = _lookup(cls)
        for alias, code in aliases.items():
            table[alias.casefold()] = cls.from_code(code)


_install_extra_aliases()


def spellings(cls: type[Labelled]) -> list[str]:
    """Every spelling a source may send for ``cls`` as written (codes, labels, extra aliases), for the contract
    files; parsing also forgives surrounding spaces and letter case."""
    found = [m.value for m in cls] + [m.label for m in cls] + list(_EXTRA_ALIASES.get(cls, {}))
    return list(dict.fromkeys(found))


def spellings_of(member: Labelled) -> list[str]:
    """The spellings that name ``member``: its code, its label and any extra alias."""
    extra = [alias for alias, code in _EXTRA_ALIASES.get(type(member), {}).items() if code == member.value]
    return [member.value, member.label, *extra]


class WithdrawReason(enum.StrEnum):
    REVOKED = "revoked"
    CREDIT_REPAIR = "credit_repair"
    PERIOD_ENDED = "period_ended"
    OTHER = "other"
