"""PROTOCOLS.md's common value rules, on every adapter, and the sandbox's side of each (issue 8, defect 7).

Dates are ``YYYY/MM/DD``, several 处罚类别 are joined by the ASCII ``;``, a withdrawal's reason is its Chinese text,
a key reused with other content is rejected with ``2010`` and the platform keeps what it had, and the national
signature covers the path relative to the platform's base URL. The portal follows the same rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from typing import Any

import orjson
import pytest
from lxml import etree

from adapters import fields
from adapters.base import Item, Operation
from adapters.municipal import Municipal, MunicipalConfig
from adapters.national import National, NationalConfig
from adapters.portal import Portal, PortalConfig
from adapters.provincial import Provincial, ProvincialConfig
from adapters.sandbox import rules
from adapters.sandbox.state import Entry, SandboxState
from schemas.enums import RECORD_KINDS, Kind, WithdrawReason
from schemas.validation import Canonical, validate
from tests.factories import BUILDERS

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 11, 25)
SLASH_DATE = re.compile(r"\d{4}/\d{2}/\d{2}")
DATE_CODES = rules.DATES
SECRET = "demo-national-secret"


def content(kind: Kind, **changes: Any) -> dict[str, Any]:
    result = validate(kind, BUILDERS[kind.value](**changes), today=TODAY)
    assert isinstance(result, Canonical), result
    return result.content


def upsert(kind: Kind, **changes: Any) -> Item:
    return Item("cg-1-v1-u", "hhzjj-1", kind, Operation.UPSERT, 1, content(kind, **changes))


def withdrawal(kind: Kind, reason: str) -> Item:
    return Item("cg-1-v1-w", "hhzjj-1", kind, Operation.WITHDRAW, 1, content(kind), reason)


def portal_values(item: Item) -> tuple[str, dict[str, str]]:
    notice = Portal(PortalConfig("t")).notice(item, NOW)
    return notice["published_on"], {f["label"]: f["value"] for f in notice["fields"]}


# -- dates and 处罚类别 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RECORD_KINDS))
def test_field_code_dates_are_written_with_slashes(kind: Kind) -> None:
    codes = fields.item_codes(upsert(kind), area="431200")
    dates = {c: v for c, v in codes.items() if c in DATE_CODES}
    assert dates, codes
    assert all(SLASH_DATE.fullmatch(v) for v in dates.values()), dates


@pytest.mark.parametrize("kind", [Kind.LICENCE, Kind.PENALTY])
def test_portal_dates_follow_the_common_rules(kind: Kind) -> None:
    published_on, values = portal_values(upsert(kind))
    assert published_on == "2026/11/25"  # 10:00 in Huaihua
    shown = {label: values[label] for label in rules.NOTICE_DATES if label in values}
    assert shown and all(SLASH_DATE.fullmatch(v) for v in shown.values()), shown
    assert rules.check_notice(published_on, values) is None


def test_portal_long_term_is_the_common_rules_2099() -> None:
    _, values = portal_values(upsert(Kind.LICENCE, valid_to="2099-12-31"))
    assert values["有效期至"] == "2099/12/31"


def test_several_penalty_kinds_are_joined_by_the_ascii_semicolon_everywhere() -> None:
    item = upsert(Kind.PENALTY, penalty_categories=["fine", "warning", "没收违法所得"], confiscated_amount="1")
    _, values = portal_values(item)
    assert values["处罚类别"] == "罚款;警告;没收违法所得"
    assert fields.item_codes(item, area="431200")["CF_CFLB"] == "罚款;警告;没收违法所得"
    assert "；" not in values["处罚类别"]


# -- withdrawal reasons ----------------------------------------------------------------------------------------

REASONS = {"revoked": "撤销", "credit_repair": "信用修复", "period_ended": "公示期满", "other": "其他"}


def test_every_withdraw_reason_has_its_protocol_text() -> None:
    assert {r.value for r in WithdrawReason} == set(REASONS)
    assert set(fields.WITHDRAW_REASON_TEXT.values()) == set(rules.WITHDRAW_REASONS)


@pytest.mark.parametrize(("reason", "text"), sorted(REASONS.items()))
def test_national_and_provincial_send_the_chinese_reason(reason: str, text: str) -> None:
    item = withdrawal(Kind.PENALTY, reason)
    national = National(NationalConfig("k", SECRET), nonce=lambda: "0123456789abcdef")
    [exchange] = national.plan([item], now=NOW).exchanges
    [entry] = orjson.loads(exchange.request.body)["items"]
    assert entry["reason"] == text

    provincial = Provincial(ProvincialConfig("431200-ZJJ", "key"))
    [exchange] = provincial.plan([item], now=NOW).exchanges
    record = etree.fromstring(exchange.request.body).find("Body/Record")
    assert record is not None and record.get("reason") == text
    assert rules.check_reason(text) is None


def test_an_unknown_reason_code_goes_as_other_never_as_english() -> None:
    assert fields.reason_text("made_up") == "其他"
    assert fields.reason_text(None) is None


def test_the_sandbox_refuses_an_english_reason() -> None:
    problem = rules.check_reason("credit_repair")
    assert problem is not None and problem[0] == "2004" and "信用修复" in problem[1]


@pytest.mark.parametrize(
    ("published_on", "values", "code"),
    [
        ("2026-11-25", {}, "2003"),
        ("2026/11/25", {"处罚决定日期": "2026-11-20"}, "2003"),
        ("2026/11/25", {"有效期至": "2027/02/29"}, "2003"),
        ("2026/11/25", {"处罚类别": "罚款；警告"}, "2004"),
        ("2026/11/25", {"处罚类别": "罚款,警告"}, "2004"),
    ],
)
def test_the_sandbox_portal_refuses_values_off_the_common_rules(
    published_on: str, values: dict[str, str], code: str
) -> None:
    problem = rules.check_notice(published_on, values)
    assert problem is not None and problem[0] == code, problem


# -- a key reused with other content ---------------------------------------------------------------------------


def entry(key: str, record_id: str, name: str) -> Entry:
    data = dict(fields.item_codes(upsert(Kind.LICENCE), area="431200")) | {"XK_XDR_MC": name}
    return Entry(key, record_id, "upsert", "XK", data)


@pytest.mark.parametrize("target", ["national", "provincial", "municipal"])
def test_a_reused_key_with_other_content_is_2010_and_the_old_content_stays(target: str) -> None:
    state = SandboxState(now=lambda: 1_800_000_000.0, result_delay=0)
    two_stage = target != "municipal"
    first = state.accept_items(target, [entry("k1", "r1", "甲公司")], "rcpt-1" if two_stage else None)
    assert [r.result for r in first] == ["accepted"]
    if two_stage:
        state.receipt(target, "rcpt-1", "d1", ["k1"])
        state.receipt(target, "rcpt-2", "d2", ["k1", "k2"])
    second = state.accept_items(
        target, [entry("k1", "r1", "乙公司"), entry("k2", "r2", "丙公司")], "rcpt-2" if two_stage else None
    )
    assert [(r.key, r.result, r.code) for r in second] == [("k1", "rejected", "2010"), ("k2", "accepted", None)]
    if two_stage:  # the business results of each receipt, as the platform answers them
        found = state.results(target, "rcpt-2")
        assert found is not None and [(r.key, r.code) for r in found[1]] == [("k1", "2010"), ("k2", None)]
        earlier = state.results(target, "rcpt-1")
        assert earlier is not None and [(r.key, r.result) for r in earlier[1]] == [("k1", "accepted")]
    _, held = state.holdings(target, "XK", 0, 10)
    assert {h["record_id"]: h["data"]["XK_XDR_MC"] for h in held} == {"r1": "甲公司", "r2": "丙公司"}
    assert {h["record_id"]: h["key"] for h in held}["r1"] == "k1"


# -- the national signature's path -----------------------------------------------------------------------------


def test_national_signs_every_request_over_its_path_under_the_base_url() -> None:
    national = National(NationalConfig("k", SECRET), nonce=lambda: "0123456789abcdef")
    exchanges = [
        *national.plan([upsert(Kind.LICENCE)], now=NOW).exchanges,
        national.results_exchange("r-1", now=NOW),
        national.holdings_exchange(Kind.LICENCE, "2", now=NOW),
    ]
    for exchange in exchanges:
        request = exchange.request
        assert request.path.startswith("/api/v1/"), request.path
        h = request.headers
        digest = hashlib.sha256(request.body).hexdigest()
        text = f"{request.method}\n{request.path}\n{h['X-Timestamp']}\n{h['X-Nonce']}\n{digest}"
        assert h["X-Signature"] == hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert exchanges[-1].request.path == "/api/v1/records?type=XK&page=2&page_size=500"  # query string signed too


def test_municipal_items_carry_no_reason() -> None:
    municipal = Municipal(MunicipalConfig("c", "s"))
    [exchange] = municipal.plan([withdrawal(Kind.LICENCE, "revoked")], now=NOW).exchanges
    [entry_] = orjson.loads(exchange.request.body)
    assert "reason" not in entry_
