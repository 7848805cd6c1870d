"""The canonical models and rules, from a table of valid and invalid records per kind."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from schemas.enums import Kind
from schemas.errors import FieldError
from schemas.validation import Canonical, validate
from tests.factories import (
    BUILDERS,
    COMPANY,
    DROP,
    commitment,
    licence,
    list_change,
    make_resident_id,
    make_uscc,
    penalty,
    person,
    with_wrong_check_digit,
)

TODAY = dt.date(2026, 11, 25)
FULL_WIDTH_COMPANY = COMPANY.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


def ok(kind: str, data: dict[str, Any]) -> Canonical:
    result = validate(Kind.from_code(kind), data, today=TODAY)
    assert isinstance(result, Canonical), result
    return result


def refused(kind: str, data: Any) -> list[FieldError]:
    result = validate(Kind.from_code(kind), data, today=TODAY)
    assert isinstance(result, list), f"expected a refusal, got {result}"
    return result


VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("contract example", "licences", licence()),
    ("chinese enum labels", "licences", licence(licence_category="特许", status="有效")),
    ("full-width code and spaces", "licences", licence(counterpart__uscc=f"  {FULL_WIDTH_COMPANY}\u3000")),
    ("lower-case code", "licences", licence(counterpart__uscc=COMPANY.lower())),
    ("long-term validity", "licences", licence(valid_to="2099-12-31")),
    ("no document number: licence number stands in", "licences", licence(document_number=DROP)),
    ("natural person", "licences", licence(counterpart=person())),
    (
        "natural person with passport",
        "penalties",
        penalty(
            counterpart={"name": "JOHN SMITH", "category": "自然人", "id_type": "护照号", "id_number": "E12345678"}
        ),
    ),
    (
        "individual business without USCC",
        "penalties",
        penalty(
            counterpart={
                "name": "鹤城区李记装修部",
                "category": "个体工商户",
                "id_type": "resident_id",
                "id_number": make_resident_id(),
            }
        ),
    ),
    (
        "individual business with USCC",
        "licences",
        licence(
            counterpart={
                "name": "鹤城区李记装修部",
                "category": "individual_business",
                "uscc": make_uscc("92431202MA4LXXXX1"[:17]),
            }
        ),
    ),
    (
        "other document type named",
        "licences",
        licence(
            counterpart={
                "name": "王五",
                "category": "natural_person",
                "id_type": "other",
                "id_type_other": "军官证",
                "id_number": "军字第2001号",
            }
        ),
    ),
    (
        "legal representative id pair",
        "licences",
        licence(
            counterpart__legal_representative_id_type="身份证",
            counterpart__legal_representative_id_number=make_resident_id(born="19700101"),
        ),
    ),
    ("penalty, amount as number", "penalties", penalty(fine_amount=0.2)),
    (
        "penalty, several chinese categories",
        "penalties",
        penalty(penalty_categories=["罚款", "没收违法所得"], confiscated_amount="1.5"),
    ),
    ("penalty without publish_until", "penalties", penalty(publish_until=DROP)),
    ("penalty, warning only", "penalties", penalty(penalty_categories=["警告"], fine_amount=DROP)),
    ("commitment", "commitments", commitment()),
    (
        "commitment unfulfilled with details",
        "commitments",
        commitment(fulfilment="全部未履行", unfulfilled_content="未按期提交材料", liability_action="列入重点关注名单"),
    ),
    ("list change", "list-changes", list_change()),
    ("list change, removal in chinese", "list-changes", list_change(action="移出", list="红名单", expiry_date=DROP)),
    (
        "dates on the founding day",
        "licences",
        licence(decision_date="1949-10-01", valid_from="1949-10-01", valid_to="2099-12-31"),
    ),
]


@pytest.mark.parametrize(("case", "kind", "data"), VALID, ids=[v[0] for v in VALID])
def test_valid_records_pass(case: str, kind: str, data: dict[str, Any]) -> None:
    ok(kind, data)


INVALID: list[tuple[str, str, dict[str, Any] | Any, str, str]] = [
    ("not an object", "licences", ["x"], "", "wrong_type"),
    ("missing department", "licences", licence(department=DROP), "department", "required"),
    ("empty content", "licences", licence(content="   "), "content", "required"),
    ("unknown field", "licences", licence(decison_date="2026-11-20"), "decison_date", "unknown_field"),
    ("unknown licence category", "licences", licence(licence_category="普通许可"), "licence_category", "unknown_value"),
    (
        "bad USCC check character",
        "licences",
        licence(counterpart__uscc=COMPANY[:-1] + "6"),
        "counterpart.uscc",
        "invalid_uscc",
    ),
    (
        "USCC with a letter O",
        "licences",
        licence(counterpart__uscc="91431200MA4L7O2K85"),
        "counterpart.uscc",
        "invalid_uscc",
    ),
    ("USCC too short", "licences", licence(authority_uscc="1143120"), "authority_uscc", "invalid_uscc"),
    ("legal entity without USCC", "licences", licence(counterpart__uscc=DROP), "counterpart.uscc", "required"),
    (
        "legal entity without representative",
        "licences",
        licence(counterpart__legal_representative=DROP),
        "counterpart.legal_representative",
        "required",
    ),
    (
        "legal entity with a person's id",
        "licences",
        licence(counterpart__id_type="resident_id", counterpart__id_number=make_resident_id()),
        "counterpart.id_type",
        "not_applicable",
    ),
    (
        "individual business with no identifier",
        "licences",
        licence(counterpart={"name": "李记装修部", "category": "individual_business"}),
        "counterpart.uscc",
        "required",
    ),
    (
        "natural person without id",
        "licences",
        licence(counterpart={"name": "张三", "category": "natural_person"}),
        "counterpart.id_number",
        "required",
    ),
    (
        "natural person with a USCC",
        "licences",
        licence(counterpart=person() | {"uscc": COMPANY}),
        "counterpart.uscc",
        "not_applicable",
    ),
    (
        "ID check digit wrong",
        "licences",
        licence(counterpart=person() | {"id_number": with_wrong_check_digit(make_resident_id())}),
        "counterpart.id_number",
        "invalid_id_number",
    ),
    (
        "ID with impossible birth date",
        "licences",
        licence(counterpart=person() | {"id_number": make_resident_id(born="19850230")}),
        "counterpart.id_number",
        "invalid_id_number",
    ),
    (
        "ID of 15 digits",
        "licences",
        licence(counterpart=person() | {"id_number": "431202850612031"}),
        "counterpart.id_number",
        "invalid_id_number",
    ),
    (
        "ID of a future birth",
        "licences",
        licence(counterpart=person() | {"id_number": make_resident_id(born="20270101")}),
        "counterpart.id_number",
        "invalid_id_number",
    ),
    (
        "other id type unnamed",
        "licences",
        licence(counterpart={"name": "王五", "category": "natural_person", "id_type": "other", "id_number": "X1"}),
        "counterpart.id_type_other",
        "required",
    ),
    (
        "representative id number without type",
        "licences",
        licence(counterpart__legal_representative_id_number=make_resident_id()),
        "counterpart.legal_representative_id_type",
        "required",
    ),
    ("impossible date", "licences", licence(valid_to="2027-02-29"), "valid_to", "invalid_date"),
    ("date as slashes", "licences", licence(decision_date="2026/11/20"), "decision_date", "invalid_date"),
    ("date as a number", "licences", licence(decision_date=20261120), "decision_date", "invalid_date"),
    ("decision in year 1", "licences", licence(decision_date="0001-01-01"), "decision_date", "invalid_date"),
    ("valid_from a placeholder", "licences", licence(valid_from="1899-12-31"), "valid_from", "invalid_date"),
    ("penalty decided in 1899", "penalties", penalty(decision_date="1899-12-31"), "decision_date", "invalid_date"),
    (
        "commitment the day before the founding",
        "commitments",
        commitment(commitment_date="1949-09-30"),
        "commitment_date",
        "invalid_date",
    ),
    (
        "listing effective in 1900",
        "list-changes",
        list_change(effective_date="1900-01-01"),
        "effective_date",
        "invalid_date",
    ),
    ("valid_to before valid_from", "licences", licence(valid_to="2026-11-19"), "valid_to", "date_order"),
    (
        "decision in the future",
        "licences",
        licence(decision_date="2026-11-26", valid_from="2026-11-26"),
        "decision_date",
        "future_date",
    ),
    ("name too long", "licences", licence(counterpart__name="建" * 201), "counterpart.name", "too_long"),
    ("document name too long", "licences", licence(document_name="书" * 65), "document_name", "too_long"),
    ("source_id with a slash", "licences", licence(source_id="XK/1"), "source_id", "invalid_source_id"),
    ("source_id too long", "licences", licence(source_id="X" * 65), "source_id", "too_long"),
    ("fine without amount", "penalties", penalty(fine_amount=DROP), "fine_amount", "required"),
    ("fine of seven decimals", "penalties", penalty(fine_amount="0.1234567"), "fine_amount", "too_many_decimals"),
    ("negative fine", "penalties", penalty(fine_amount="-1"), "fine_amount", "invalid_amount"),
    ("fine not a number", "penalties", penalty(fine_amount="两千元"), "fine_amount", "invalid_amount"),
    (
        "unknown penalty category",
        "penalties",
        penalty(penalty_categories=["fine", "打板子"]),
        "penalty_categories[1]",
        "unknown_value",
    ),
    (
        "duplicate penalty category",
        "penalties",
        penalty(penalty_categories=["fine", "罚款"]),
        "penalty_categories[1]",
        "duplicate_value",
    ),
    ("no penalty category", "penalties", penalty(penalty_categories=[]), "penalty_categories", "required"),
    ("publish_until before decision", "penalties", penalty(publish_until="2026-10-09"), "publish_until", "date_order"),
    (
        "partial fulfilment without details",
        "commitments",
        commitment(fulfilment="partial"),
        "unfulfilled_content",
        "required",
    ),
    (
        "unknown commitment type",
        "commitments",
        commitment(commitment_type="口头型"),
        "commitment_type",
        "unknown_value",
    ),
    (
        "commitment in the future",
        "commitments",
        commitment(commitment_date="2027-01-01"),
        "commitment_date",
        "future_date",
    ),
    ("unknown list", "list-changes", list_change(list="灰名单"), "list", "unknown_value"),
    ("expiry before effect", "list-changes", list_change(expiry_date="2026-08-31"), "expiry_date", "date_order"),
    (
        "deciding unit code bad",
        "list-changes",
        list_change(deciding_unit_uscc="11431200MB1234567X"),
        "deciding_unit_uscc",
        "invalid_uscc",
    ),
]


@pytest.mark.parametrize(("case", "kind", "data", "field", "code"), INVALID, ids=[v[0] for v in INVALID])
def test_invalid_records_name_the_field_and_rule(case: str, kind: str, data: Any, field: str, code: str) -> None:
    errors = refused(kind, data)
    assert (field, code) in [(e.field, e.code) for e in errors], errors
    assert all(e.message for e in errors)


def test_normalised_content_hashes_equal_and_keeps_chinese_text() -> None:
    plain = ok("licences", licence())
    messy = ok(
        "licences",
        licence(
            counterpart__uscc=f" {FULL_WIDTH_COMPANY} ",
            licence_category=" 普通 ",
            content=" 准予核发怀化市鹤城区某住宅项目建筑工程施工许可证\u3000",
        ),
    )
    assert messy.content_hash == plain.content_hash
    assert messy.content["counterpart"]["uscc"] == COMPANY
    assert messy.content["licence_category"] == "ordinary"

    bracketed = ok("licences", licence(counterpart__name="怀化市鹤城建筑工程有限公司（第一分公司）"))
    assert bracketed.content["counterpart"]["name"] == "怀化市鹤城建筑工程有限公司（第一分公司）"


def test_amounts_are_exact_decimals_in_wanyuan() -> None:
    record = ok("penalties", penalty(fine_amount=0.2, confiscated_amount="１２.５")).record
    assert record.fine_amount == Decimal("0.2")  # type: ignore[attr-defined]
    assert record.confiscated_amount == Decimal("12.5")  # type: ignore[attr-defined]
    assert ok("penalties", penalty(fine_amount="0.000001")).content["fine_amount"] == "0.000001"


def test_licence_number_stands_in_for_a_missing_document_number() -> None:
    assert ok("licences", licence(document_number="")).content["document_number"] == "431200202611200101"


def test_list_field_keeps_its_contract_name() -> None:
    content = ok("list-changes", list_change(list="黑名单")).content
    assert content["list"] == "black"
    assert "list_type" not in content


def test_every_error_of_a_bad_record_is_reported_at_once() -> None:
    errors = refused("licences", licence(department=DROP, licence_category="x", valid_to="2027-02-30"))
    assert {e.field for e in errors} == {"department", "licence_category", "valid_to"}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_every_kind_builder_is_valid(kind: str) -> None:
    assert ok(kind, BUILDERS[kind]()).record.kind.value == kind


def test_dates_before_the_founding_name_the_bound() -> None:
    [error] = refused("penalties", penalty(decision_date="0001-01-01"))
    assert (error.field, error.code) == ("decision_date", "invalid_date")
    assert "1949-10-01" in error.message and "0001-01-01" in error.message
