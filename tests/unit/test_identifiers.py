"""Identifier checks against python-stdnum, including the re-registered county case it gets wrong for us."""

from __future__ import annotations

import datetime as dt

import pytest
from stdnum.cn import ric

from schemas.identifiers import IdentifierError, check_resident_id, check_uscc, mask_id_number
from tests.factories import make_resident_id, with_wrong_check_digit

TODAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize(
    "code",
    ["91230500MA1B3N1N2M", "11230500001755309F", "11420000MB15291767", "91330282L07196379D", "9133021272513935X8"],
)
def test_published_sample_codes_are_valid(code: str) -> None:  # STANDARDS.md §5
    assert check_uscc(code) == code


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("00000000000000000X", "check character"),
        ("91431200MA4L7P2K8", "18 characters"),
        ("91431200MA4L7I2K85", "no I, O, S, V, Z"),
    ],
)
def test_bad_codes_say_which_rule(code: str, rule: str) -> None:
    with pytest.raises(IdentifierError, match=rule):
        check_uscc(code)


def test_number_from_a_county_created_after_the_birth_year_is_accepted() -> None:
    # 110118 is 密云区, a code from 2015; a person born in 1980 there was re-registered under it.
    number = make_resident_id(region="110118", born="19800101", seq="123")
    assert not ric.is_valid(number)  # stdnum's validate rejects it...
    assert check_resident_id(number, today=TODAY) == number  # ...we do not


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        (with_wrong_check_digit(make_resident_id()), "check digit"),
        (make_resident_id(born="19850230"), "impossible birth date"),
        (make_resident_id(region="991202"), "province code"),
        (make_resident_id(born="18991231"), "outside 1900"),
        ("43120219850612031", "18 characters"),
        ("43120219850612031A", "17 digits"),
    ],
)
def test_bad_id_numbers_say_which_rule(number: str, rule: str) -> None:
    with pytest.raises(IdentifierError, match=rule):
        check_resident_id(number, today=TODAY)


def test_masking_keeps_what_protocols_allow() -> None:
    assert mask_id_number("430102199003071234") == "4301**********1234"
    assert mask_id_number("E12345678") == "*****5678"
