"""Identifier checks of the national standard: 统一社会信用代码 (GB 32100) and 居民身份证号码 (GB 11643).

Both lean on python-stdnum. For ID numbers we deliberately do not call ``stdnum.cn.ric.validate``: it also
rejects a real number whose county code was created after the birth year, but people are re-registered when
counties change, so such numbers are genuine. We keep stdnum's check digit and birth-date logic and only require
a known province code.
"""

from __future__ import annotations

import datetime as dt
import functools

from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError as StdnumError

# GB/T 2260 province-level codes (first two digits of a resident ID number).
_PROVINCES = frozenset(
    [
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    ]
)


PROVINCE_CODES = _PROVINCES
"""GB/T 2260 province-level codes a resident ID number may start with."""


class IdentifierError(ValueError):
    """The identifier breaks the rule its message states."""


@functools.lru_cache(maxsize=65536)
def check_uscc(code: str) -> str:
    """The code if it is a well-formed USCC with a correct GB 32100 check character.

    Memoised: the bureau's own code is in nearly every record, and a company's in every record about it.
    """
    if len(code) != 18:
        raise IdentifierError(f"统一社会信用代码 must be 18 characters, got {len(code)}")
    try:
        return str(uscc.validate(code))
    except StdnumError as exc:
        if "checksum" in type(exc).__name__.lower():
            raise IdentifierError("统一社会信用代码 check character (GB 32100) does not match") from exc
        raise IdentifierError(
            "统一社会信用代码 must be 8 digits then 10 of 0-9 A-H J-N P-R T U W-Y (no I, O, S, V, Z)"
        ) from exc


def check_resident_id(number: str, *, today: dt.date) -> str:
    """The number if it is an 18-character resident ID with a real birth date and a correct check digit."""
    if len(number) != 18:
        raise IdentifierError(f"resident ID numbers have 18 characters, got {len(number)}")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise IdentifierError("resident ID numbers are 17 digits followed by a digit or X")
    if number[:2] not in _PROVINCES:
        raise IdentifierError(f"resident ID number starts with an unknown province code {number[:2]}")
    try:
        born = ric.get_birth_date(number)
    except StdnumError as exc:
        raise IdentifierError("resident ID number holds an impossible birth date") from exc
    if born.year < 1900 or born > today:
        raise IdentifierError("resident ID number holds a birth date outside 1900 to today")
    if ric.calc_check_digit(number) != number[17]:
        raise IdentifierError("resident ID number check digit (GB 11643) does not match")
    return number


def mask_id_number(number: str) -> str:
    """The public form PROTOCOLS.md asks for: 18 characters keep 4+4, others keep their last 4."""
    if len(number) == 18:
        return number[:4] + "*" * 10 + number[-4:]
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]
