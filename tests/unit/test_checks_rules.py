"""Worked examples of the credit check's pure parts: the national reply read without trust, findings and advice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from adapters.base import Reply, ReplyError
from adapters.national import National, NationalConfig, SubjectPenalty, SubjectReport, interpret_subject
from gateway.findings import Findings, add_national, advise, is_serious, local_findings
from gateway.settings import JobSettings

RULES = JobSettings().period_rules
DAY = dt.date(2026, 11, 25)


def reply(body: Any, status: int = 200, media: str = "application/json") -> Reply:
    return Reply(status, {"Content-Type": media}, orjson.dumps(body))


def test_subject_query_is_signed_and_escaped() -> None:
    adapter = National(NationalConfig("demo-national", "secret"), nonce=lambda: "n" * 16)
    exchange = adapter.subject_exchange("4312 02/X", now=dt.datetime(2026, 11, 25, tzinfo=dt.UTC))
    assert exchange.request.path == "/api/v1/subjects/4312%2002%2FX"
    assert exchange.request.method == "GET" and len(exchange.request.headers["X-Signature"]) == 64


def test_subject_reply_read_into_codes_and_dates() -> None:
    data = {
        "code": "91431200MA4L7P2K85",
        "name": "某公司",
        "lists": [{"list": "黑名单", "list_name": "失信名单", "unit": "法院", "since": "2026/01/02", "until": ""}],
        "penalties": [
            {"decision_number": "X1", "unit": "U", "decision_date": "2026-02-03", "publish_until": "2029/02/03",
             "categories": "罚款;其他-通报", "serious": True}
        ],
        "queried_at": "2026-11-25T02:00:00Z",
    }  # fmt: skip
    report = interpret_subject(reply({"code": "0", "message": "ok", "data": data}))
    [entry] = report.lists
    assert (entry.list, entry.since, entry.until) == ("black", dt.date(2026, 1, 2), None)
    [p] = report.penalties
    assert p.categories == ("fine", "other") and p.serious and p.publish_until == dt.date(2029, 2, 3)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (reply({"code": "4290", "message": "too many"}, 429), "4290"),
        (reply({"code": "5000", "message": "down"}, 500), "5000"),
        (Reply(200, {"Content-Type": "text/html"}, b"<html>502</html>"), "wrong_content_type"),
        (reply({"code": "0", "data": {"name": "x"}}), "malformed_reply"),
        (reply({"code": "0", "data": {"code": "C", "lists": [{"list": "灰名单"}]}}), "malformed_reply"),
        (
            reply({"code": "0", "data": {"code": "C", "penalties": [{"decision_date": "2026-13-01"}]}}),
            "malformed_reply",
        ),
    ],
)
def test_bad_subject_replies_are_reply_errors(answer: Reply, code: str) -> None:
    with pytest.raises(ReplyError) as caught:
        interpret_subject(answer)
    assert caught.value.code == code


def test_serious_from_categories_unless_marked() -> None:
    assert is_serious(["fine", "detention"], None)
    assert not is_serious(["fine", "warning"], None)
    assert not is_serious(["revoke_licence"], False)  # the source said not serious
    assert is_serious(["fine"], True)


def row(kind: str, source_id: str, **content: Any) -> dict[str, Any]:
    return {"kind": kind, "source_system": "s", "source_id": source_id, "department": "d", "content": content}


def test_a_later_removal_ends_a_list_entry_and_a_readmission_counts_again() -> None:
    add = row("list-changes", "a", list="black", list_name="黑名单甲", action="add", effective_date="2026-01-01")
    off = row("list-changes", "b", list="black", list_name="黑名单甲", action="remove", effective_date="2026-03-01")
    again = row("list-changes", "c", list="black", list_name="黑名单甲", action="add", effective_date="2026-06-01")
    assert local_findings([add, off], DAY, RULES).black_list == []
    assert [e["local"]["source_id"] for e in local_findings([add, off, again], DAY, RULES).black_list] == ["c"]
    assert len(local_findings([add, off], dt.date(2026, 2, 1), RULES).black_list) == 1  # before the removal


def test_penalty_period_from_the_rules_when_the_source_gave_none() -> None:
    # 令第58号: 36 months by default, warnings 3 months
    warning = row("penalties", "w", decision_number="W", penalty_categories=["warning"], decision_date="2026-07-01")
    fine = row("penalties", "f", decision_number="F", penalty_categories=["fine"], decision_date="2026-07-01")
    found = local_findings([warning, fine], DAY, RULES)
    assert [(p["decision_number"], p["publish_until"]) for p in found.penalties] == [("F", "2029-07-01")]


def test_advice_precedence_and_national_merge() -> None:
    found = Findings()
    add_national(
        found,
        SubjectReport(
            "C",
            "某公司",
            (),
            (
                SubjectPenalty("P1", "U", dt.date(2026, 1, 1), dt.date(2027, 1, 1), ("detention",), False),
                SubjectPenalty("P2", "U", dt.date(2020, 1, 1), dt.date(2021, 1, 1), ("detention",), True),  # ended
            ),
        ),
        DAY,
        RULES,
    )
    assert [p["decision_number"] for p in found.penalties] == ["P1"] and found.penalties[0]["serious"]
    advice, reasons = advise(found)
    assert advice == "caution" and reasons == ["严重失信行政处罚 P1（U，公示至 2027-01-01，national）"]
    found.black_list.append({"list_name": "甲", "unit": None, "since": None, "sources": ["local"]})
    assert advise(found) == ("restrict", ["黑名单「甲」（认定单位不详，日期不详 起，local）"])
    assert advise(Findings()) == ("no_record", [])
