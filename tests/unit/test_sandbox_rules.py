"""The sandbox platforms' own field checks (STANDARDS.md §1.5), one rule at a time, from a record the adapters
map correctly: each broken field gets the platform's code."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from adapters import fields
from adapters.base import Item, Operation
from adapters.sandbox.rules import check
from schemas.enums import Kind
from schemas.validation import Canonical, validate
from tests.factories import licence, penalty, person


def codes(kind: Kind, data: dict[str, Any]) -> dict[str, str]:
    canonical = validate(kind, data, today=dt.date(2026, 11, 25))
    assert isinstance(canonical, Canonical)
    item = Item("k", "hhzjj-1", kind, Operation.UPSERT, 1, canonical.content)
    return fields.item_codes(item, area="431200")


LICENCE = codes(Kind.LICENCE, licence())
PENALTY = codes(Kind.PENALTY, penalty())
PERSON = codes(Kind.PENALTY, penalty(counterpart=person()))


def test_well_formed_records_pass() -> None:
    assert check("XK", LICENCE) is None
    assert check("CF", PENALTY) is None
    assert check("CF", PERSON) is None


@pytest.mark.parametrize(
    ("type_code", "base", "change", "code"),
    [
        ("XK", LICENCE, {"XK_XKLB": "发明的类别"}, "2004"),  # not in the standard's list
        ("CF", PENALTY, {"CF_CFLB": "罚款;打板子"}, "2004"),
        ("XK", LICENCE, {"XK_XDR_SHXYM": "91431200MA4L7P2K86"}, "2002"),  # USCC check digit
        ("CF", PERSON, {"CF_XDR_ZJHM": "430102198506120316"}, "2002"),  # 身份证 check digit
        ("XK", LICENCE, {"XK_JDRQ": "2026/02/30"}, "2003"),  # not a real date
        ("CF", PENALTY, {"CF_NR_FK": "0.1234567"}, "2004"),  # 万元 with more than 6 decimals
        ("CF", PERSON, {"CF_XDR_ZJLX": "居住证"}, "2004"),  # an identity document the standard does not list
    ],
)
def test_each_rule_answers_with_the_platforms_code(
    type_code: str, base: dict[str, str], change: dict[str, str], code: str
) -> None:
    problem = check(type_code, base | change)
    assert problem is not None and problem[0] == code, problem
    assert next(iter(change)) in problem[1]
