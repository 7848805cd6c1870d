"""One corpus of valid and invalid records, run through the API and through the shipped JSON Schema files.

Each case says what the API does with it. Where JSON Schema cannot express the rule that refuses a record, the
case names that rule (one of ``INEXPRESSIBLE``); where the API forgives a spelling the schema does not list, the
case names the leniency (one of ``LENIENT``). Every other case must get the same answer from both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema

from schemas.jsonschema import CONTRACT_DIR
from tests.factories import (
    COMPANY,
    DROP,
    case,
    commitment,
    licence,
    list_change,
    make_resident_id,
    news,
    penalty,
    person,
    with_wrong_check_digit,
)

# The rules the API checks and the schema cannot (schemas.jsonschema.INEXPRESSIBLE, README "Contract files").
INEXPRESSIBLE = {
    "uscc_check": "统一社会信用代码 check character",
    "id_check": "resident ID check digit and birth date",
    "calendar": "real calendar dates",
    "future": "not after today",
    "date_order": "end dates not before their start",
    "number_decimals": "6 decimals of an amount sent as a JSON number",
    "cleaning": "content_html with nothing left once cleaned to the portal's allow-list",
}
LENIENT = {"enum_spelling": "enumerations with surrounding spaces or in another letter case"}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    record: Any
    api_accepts: bool
    unlike_schema: str | None = None  # a key of INEXPRESSIBLE or LENIENT: the schema answers the other way

    @property
    def schema_accepts(self) -> bool:
        return self.api_accepts if self.unlike_schema is None else not self.api_accepts


FULL_WIDTH = str.maketrans({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


def ok(name: str, kind: str, record: Any) -> Case:
    return Case(name, kind, record, True)


def bad(name: str, kind: str, record: Any, unlike_schema: str | None = None) -> Case:
    return Case(name, kind, record, False, unlike_schema)


CASES = [
    # accepted by both
    ok("licence", "licences", licence()),
    ok("penalty", "penalties", penalty()),
    ok("commitment", "commitments", commitment()),
    ok("list change", "list-changes", list_change()),
    ok(
        "chinese label aliases",
        "licences",
        licence(licence_category="特许", status="有效", counterpart__category="法人及非法人组织"),
    ),
    ok("chinese penalty categories", "penalties", penalty(penalty_categories=["罚款", "警告"])),
    ok("chinese list and extra alias", "list-changes", list_change(list="黑名单", action="列入")),
    ok("licence without document_number", "licences", licence(document_number=DROP)),
    ok("licence with an empty document_number", "licences", licence(document_number="")),
    ok(
        "full-width lower-case USCC",
        "licences",
        licence(counterpart__uscc=f" {COMPANY.lower().translate(FULL_WIDTH)}\u3000"),
    ),
    ok("full-width date", "licences", licence(decision_date="２０２６－１１－２０")),
    ok("natural person", "penalties", penalty(counterpart=person())),
    ok(
        "individual business by ID",
        "penalties",
        penalty(
            counterpart={
                "name": "鹤城区李记装修部",
                "category": "个体工商户",
                "id_type": "居民身份证",
                "id_number": make_resident_id(),
            }
        ),
    ),
    ok(
        "other document named",
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
    ok("amount as a number", "penalties", penalty(fine_amount=0.2)),
    ok("amount full width, six decimals", "penalties", penalty(fine_amount="１２.１２３４５６")),
    ok("warning only, no amount", "penalties", penalty(penalty_categories=["warning"], fine_amount=DROP)),
    ok("dates on the founding day", "licences", licence(decision_date="1949-10-01", valid_from="1949-10-01")),
    ok("long term", "licences", licence(valid_to="2099-12-31")),
    ok("a number for a text field", "licences", licence(licence_number=4312002026)),
    ok("null optional field", "licences", licence(remarks=None, certificate_name=None)),
    ok("text padded to its limit", "licences", licence(document_name=" " + "书" * 64 + "\u3000")),
    ok(
        "commitment unfulfilled with details",
        "commitments",
        commitment(fulfilment="全部未履行", unfulfilled_content="未按期提交材料", liability_action="列入重点关注名单"),
    ),
    ok("case", "cases", case()),
    ok("news", "news", news()),
    ok("case without counterpart", "cases", case(counterpart=DROP)),
    ok("case of a natural person, type by label", "cases", case(counterpart=person(), case_type="守信激励")),
    ok("news without summary or author", "news", news(summary=DROP, author=DROP)),
    ok(
        "hostile html is cleaned, not refused", "news", news(content_html='<p onclick="x()">正文<script>1</script></p>')
    ),
    ok("html at its limit", "news", news(content_html="<p>" + "文" * 99_993 + "</p>")),
    # refused by both
    bad("unknown case type", "cases", case(case_type="表扬")),
    bad("case without case type", "cases", case(case_type=DROP)),
    bad("news with a case type", "news", news(case_type="integrity")),
    bad("title too long", "news", news(title="题" * 201)),
    bad("missing content_html", "cases", case(content_html=DROP)),
    bad("empty content_html", "news", news(content_html="")),
    bad("content_html over 100,000 characters", "news", news(content_html="<p>" + "文" * 99_994 + "</p>")),
    bad("html as a number", "news", news(content_html=1)),
    bad("case counterpart person without ID", "cases", case(counterpart={"name": "张三", "category": "自然人"})),
    bad("article without source_unit", "news", news(source_unit=DROP)),
    bad("article with remarks", "news", news(remarks="备注")),
    bad("missing legal representative", "licences", licence(counterpart__legal_representative=DROP)),
    bad("null legal representative", "licences", licence(counterpart__legal_representative=None)),
    bad("legal entity without USCC", "licences", licence(counterpart__uscc=DROP)),
    bad("natural person with a USCC", "licences", licence(counterpart=person() | {"uscc": COMPANY})),
    bad("natural person without ID", "licences", licence(counterpart={"name": "张三", "category": "natural_person"})),
    bad(
        "legal entity with a person's ID",
        "licences",
        licence(counterpart__id_type="resident_id", counterpart__id_number=make_resident_id()),
    ),
    bad(
        "individual business without identifier",
        "licences",
        licence(counterpart={"name": "李记装修部", "category": "individual_business"}),
    ),
    bad(
        "other document unnamed",
        "licences",
        licence(counterpart={"name": "王五", "category": "natural_person", "id_type": "other", "id_number": "X1"}),
    ),
    bad(
        "ID number without type",
        "licences",
        licence(counterpart__legal_representative_id_number=make_resident_id()),
    ),
    bad(
        "ID of an unknown province",
        "licences",
        licence(counterpart=person() | {"id_number": make_resident_id("991202")}),
    ),
    bad("ID of 15 digits", "licences", licence(counterpart=person() | {"id_number": "431202850612031"})),
    bad("fine without amount", "penalties", penalty(fine_amount=DROP)),
    bad("fine of zero", "penalties", penalty(fine_amount="0.000")),
    bad("fine of seven decimals", "penalties", penalty(fine_amount="0.1234567")),
    bad("abc as amount", "penalties", penalty(fine_amount="abc")),
    bad("amount with an exponent", "penalties", penalty(fine_amount="2e-1")),
    bad("negative amount", "penalties", penalty(fine_amount="-1")),
    bad("amount of 13 integer digits", "penalties", penalty(fine_amount="1234567890123")),
    bad("amount of 13 integer digits as a number", "penalties", penalty(fine_amount=1234567890123)),
    bad("duplicate category by label", "penalties", penalty(penalty_categories=["fine", "罚款"])),
    bad("no penalty category", "penalties", penalty(penalty_categories=[])),
    bad("unknown penalty category", "penalties", penalty(penalty_categories=["打板子"])),
    bad("decision in year 1", "licences", licence(decision_date="0001-01-01")),
    bad("decision in 1899", "penalties", penalty(decision_date="1899-12-31")),
    bad("the day before the founding", "commitments", commitment(commitment_date="1949-09-30")),
    bad("date with slashes", "licences", licence(decision_date="2026/11/20")),
    bad("date as a number", "licences", licence(decision_date=20261120)),
    bad("month 13", "licences", licence(valid_to="2027-13-01")),
    bad("USCC with a letter O", "licences", licence(counterpart__uscc="91431200MA4L7O2K85")),
    bad("USCC too short", "licences", licence(authority_uscc="1143120")),
    bad("USCC as a number", "licences", licence(authority_uscc=11431200)),
    bad("unknown field", "licences", licence(decison_date="2026-11-20")),
    bad("unknown licence category", "licences", licence(licence_category="普通许可")),
    bad("text too long", "licences", licence(counterpart__name="建" * 201)),
    bad("blank text", "licences", licence(content="  \u3000 ")),
    bad("missing department", "licences", licence(department=DROP)),
    bad("null department", "licences", licence(department=None)),
    bad("boolean for text", "licences", licence(department=True)),
    bad("no document or licence number", "licences", licence(document_number=DROP, licence_number=DROP)),
    bad("blank document number, no licence number", "licences", licence(document_number=" ", licence_number=DROP)),
    bad("partial fulfilment without details", "commitments", commitment(fulfilment="partial")),
    bad("unknown list", "list-changes", list_change(list="灰名单")),
    bad("list under its python name", "list-changes", {**list_change(), "list_type": "black"}),
    bad("source_id with a slash", "licences", licence(source_id="XK/1")),
    bad("source_id with a line break", "licences", licence(source_id="XK\n1")),
    bad("source_id too long", "licences", licence(source_id="X" * 65)),
    bad("not an object", "licences", ["x"]),
    # refused by the API by a rule JSON Schema cannot express
    bad("USCC check character", "licences", licence(counterpart__uscc=COMPANY[:-1] + "6"), "uscc_check"),
    bad(
        "ID check digit",
        "licences",
        licence(counterpart=person() | {"id_number": with_wrong_check_digit(make_resident_id())}),
        "id_check",
    ),
    bad("29 February of a common year", "licences", licence(valid_to="2027-02-29"), "calendar"),
    bad("decision in the future", "licences", licence(decision_date="2026-11-26", valid_from="2026-11-26"), "future"),
    bad("commitment in the future", "commitments", commitment(commitment_date="2027-01-01"), "future"),
    bad("valid_to before valid_from", "licences", licence(valid_to="2026-11-19"), "date_order"),
    bad("publish_until before decision", "penalties", penalty(publish_until="2026-10-09"), "date_order"),
    bad("expiry before effect", "list-changes", list_change(expiry_date="2026-08-31"), "date_order"),
    bad("seven decimals as a number", "penalties", penalty(fine_amount=0.1234567), "number_decimals"),
    bad("news published tomorrow", "news", news(published_on="2026-11-26"), "future"),
    bad("nothing left once cleaned", "news", news(content_html="<script>alert(1)</script><!-- x -->"), "cleaning"),
    # accepted by the API, which forgives spellings the schema does not list
    Case(
        "enumeration code padded and capitalised",
        "licences",
        licence(licence_category=" Ordinary "),
        True,
        "enum_spelling",
    ),
]


def unique(cases: list[Case]) -> list[Case]:
    """The corpus with a source_id of its own per record, so accepted records do not become versions of another."""
    out = []
    for i, one in enumerate(cases):
        record = one.record
        if isinstance(record, dict) and "source_id" in record and "source_id" not in one.name:
            record = record | {"source_id": f"CORPUS-{i:03d}"}
        out.append(Case(one.name, one.kind, record, one.api_accepts, one.unlike_schema))
    return out


@cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((CONTRACT_DIR / f"{kind}.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def schema_accepts(kind: str, record: Any) -> bool:
    return bool(validator(kind).is_valid(record))
