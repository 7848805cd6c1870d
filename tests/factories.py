"""Builders of valid records of each kind, and synthetic identifiers with correct check characters.

The identifiers are made up: real personal ID numbers never enter the repository (STANDARDS.md §5).
"""

from __future__ import annotations

import copy
from typing import Any

from stdnum.cn import ric, uscc

BUREAU = "11431200MB1234567N"  # CONTRACT.md's example authority code (valid check character)
COMPANY = "91431200MA4L7P2K85"  # CONTRACT.md's example company code
# A sandbox rejection rule (PUT /_admin/{target}/faults {"reject_rule": ...}) that refuses the factories' company by
# name with the target's own code and message: how tests make a delivery dead on purpose.
NAME_MISMATCH = {"field": "XK_XDR_MC", "equals": "怀化市鹤城建筑工程有限公司", "code": "2004", "message": "名称不一致"}
DROP = object()  # as a change value: remove the field


def make_uscc(body17: str) -> str:
    return body17 + uscc.calc_check_digit(body17 + "0")


def make_resident_id(region: str = "431202", born: str = "19850612", seq: str = "031") -> str:
    body = region + born + seq
    return body + ric.calc_check_digit(body + "0")


def with_wrong_check_digit(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


def _common(source_id: str) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "department": "行政审批科",
        "counterpart": {
            "name": "怀化市鹤城建筑工程有限公司",
            "category": "legal_entity",
            "uscc": COMPANY,
            "legal_representative": "张伟",
        },
        "authority": "怀化市住房和城乡建设局",
        "authority_uscc": BUREAU,
        "source_unit": "怀化市住房和城乡建设局",
        "source_unit_uscc": BUREAU,
    }


def licence(source_id: str = "XK-2026-000123", **changes: Any) -> dict[str, Any]:
    data = _common(source_id) | {
        "document_name": "建筑工程施工许可证核发决定书",
        "document_number": "怀建许〔2026〕123号",
        "licence_category": "ordinary",
        "certificate_name": "建筑工程施工许可证",
        "licence_number": "431200202611200101",
        "content": "准予核发怀化市鹤城区某住宅项目建筑工程施工许可证",
        "decision_date": "2026-11-20",
        "valid_from": "2026-11-20",
        "valid_to": "2027-11-19",
        "status": "valid",
    }
    return _apply(data, changes)


def penalty(source_id: str = "CF-2026-000045", **changes: Any) -> dict[str, Any]:
    data = _common(source_id) | {
        "department": "建工科",
        "decision_number": "怀建罚决〔2026〕45号",
        "violation_type": "未取得施工许可证擅自施工",
        "violation_facts": "当事人在未取得施工许可证的情况下擅自开工建设。",
        "legal_basis": "《建筑工程施工许可管理办法》第十二条",
        "penalty_categories": ["fine", "warning"],
        "content": "罚款2000元，警告",
        "fine_amount": "0.2",
        "decision_date": "2026-10-10",
        "valid_until": "2026-10-17",
        "publish_until": "2027-10-17",
    }
    return _apply(data, changes)


def commitment(source_id: str = "CN-2026-000007", **changes: Any) -> dict[str, Any]:
    data = _common(source_id) | {
        "department": "房监科",
        "commitment_type": "approval_substitute",
        "matter": "申请办理房地产开发企业资质证书",
        "content": "本企业承诺所提交材料真实有效",
        "liability": "如有虚假，自愿承担相应法律责任",
        "commitment_date": "2026-11-02",
        "valid_until": "2027-11-01",
        "fulfilment": "pending",
        "accepting_unit": "怀化市住房和城乡建设局",
        "accepting_unit_uscc": BUREAU,
        "disclosure": "public",
    }
    return _apply(data, changes)


def list_change(source_id: str = "MD-2026-000003", **changes: Any) -> dict[str, Any]:
    data = _common(source_id) | {
        "department": "建工科",
        "list": "black",
        "list_name": "建筑市场黑名单",
        "action": "add",
        "document_number": "怀建黑〔2026〕3号",
        "reason": "拖欠农民工工资，情节严重",
        "basis": "《建筑市场信用管理暂行办法》第十四条",
        "deciding_unit": "怀化市住房和城乡建设局",
        "deciding_unit_uscc": BUREAU,
        "effective_date": "2026-09-01",
        "expiry_date": "2027-08-31",
    }
    return _apply(data, changes)


def _article(source_id: str) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "department": "建工科",
        "published_on": "2026-11-18",
        "author": "李明",
        "source_unit": "怀化市住房和城乡建设局",
    }


def case(source_id: str = "AL-2026-000002", **changes: Any) -> dict[str, Any]:
    data = _article(source_id) | {
        "title": "某建筑公司拖欠农民工工资被列入黑名单",
        "summary": "失信惩戒典型案例",
        "content_html": "<p>经查，<strong>该公司</strong>拖欠农民工工资，情节严重。</p>"
        '<p><img src="https://www.huaihua.gov.cn/zjj/a.png" alt="现场"></p>',
        "case_type": "dishonesty",
        "counterpart": {
            "name": "怀化市鹤城建筑工程有限公司",
            "category": "legal_entity",
            "uscc": COMPANY,
            "legal_representative": "张伟",
        },
    }
    return _apply(data, changes)


def news(source_id: str = "DT-2026-000011", **changes: Any) -> dict[str, Any]:
    data = _article(source_id) | {
        "department": "局办公室",
        "title": "我局开展“诚信建设万里行”宣传活动",
        "content_html": "<p>11月18日，我局在五一广场开展诚信宣传。</p>"
        '<ul><li>发放资料</li><li>现场咨询</li></ul><p><a href="https://www.huaihua.gov.cn/xy">详情</a></p>',
    }
    return _apply(data, changes)


def person(name: str = "张三") -> dict[str, Any]:
    return {"name": name, "category": "natural_person", "id_type": "resident_id", "id_number": make_resident_id()}


def _apply(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``field=value`` and ``counterpart__field=value`` changes; a value of ``DROP`` removes the field."""
    data = copy.deepcopy(data)
    for key, value in changes.items():
        target, name = (data["counterpart"], key.split("__", 1)[1]) if key.startswith("counterpart__") else (data, key)
        if value is DROP:
            target.pop(name, None)
        else:
            target[name] = value
    return data


BUILDERS = {
    "licences": licence,
    "penalties": penalty,
    "commitments": commitment,
    "list-changes": list_change,
    "cases": case,
    "news": news,
}


def canonical_content(kind: Any, today: Any, **changes: Any) -> dict[str, Any]:
    """The normalised content the gateway would store (and send) for the example record of ``kind``."""
    from schemas.validation import Canonical, validate

    result = validate(kind, BUILDERS[kind.value](**changes), today=today)
    assert isinstance(result, Canonical), result
    return result.content
