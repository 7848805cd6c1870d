"""Articles (典型案例, 工作动态) through the real API, on SQLite and PostgreSQL: cleaned before they are stored, the
answer lists what was removed, errors name field, rule and position, and they stay out of the 公示率 and the at-risk
view (they are the plan's quota items, with no deadline)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from outbox import tables
from outbox.store import Store
from schemas.calendar import end_of_day
from tests.conftest import bearer
from tests.factories import DROP, case, licence, news, person

HOSTILE = (
    "<p>现场检查发现问题。<script>alert('x')</script></p>\n"
    '<p><img src="https://www.huaihua.gov.cn/a.png" alt="现场" onerror="alert(1)">'
    '<a href="javascript:alert(2)">点此</a> <img src="data:image/png;base64,iVBORw0KGgo="></p>'
)


def stored_texts(store: Store, record_id: int) -> list[str]:
    """Everything kept of the record's versions, as text: content and the submitted copy."""
    rows = store.db.read(
        lambda c: c.execute(
            sa.select(tables.record_version.c.content, tables.record_version.c.submitted).where(
                tables.record_version.c.record_id == record_id
            )
        ).all()
    )
    return [orjson.dumps(value).decode() for row in rows for value in row]


def test_a_case_is_cleaned_before_it_is_stored_and_the_answer_lists_what_went(
    client: httpx.Client, source_key: str, store: Store
) -> None:
    posted = client.post("/api/v1/cases", json=case(content_html=HOSTILE), headers=bearer(source_key))
    assert posted.status_code == 201, posted.text
    body = posted.json()
    assert body["deliveries"] == [{"target": "municipal", "state": "pending"}, {"target": "portal", "state": "pending"}]
    removed = {(r["code"], r["name"]) for r in body["removed"]}
    assert removed == {
        ("element_removed", "script"),
        ("attribute_removed", "onerror"),
        ("url_removed", "javascript:"),
        ("url_removed", "data:"),
    }
    script = next(r for r in body["removed"] if r["name"] == "script")
    assert (script["field"], script["line"], script["column"]) == ("content_html", 1, 13)
    assert all(r["line"] == 2 for r in body["removed"] if r["name"] != "script")

    for text in stored_texts(store, body["id"]):
        for hostile in ("script", "alert", "onerror", "javascript:", "data:"):
            assert hostile not in text, (hostile, text)
    view = client.get("/api/v1/cases/AL-2026-000002", headers=bearer(source_key)).json()
    assert view["kind"] == "cases" and view["record"]["case_type"] == "dishonesty"
    assert view["record"]["content_html"] == (
        '<p>现场检查发现问题。</p>\n<p><img src="https://www.huaihua.gov.cn/a.png" alt="现场"><a>点此</a> </p>'
    )
    # the same uncleaned text again: nothing changes, and the answer still says what cleaning removes
    again = client.post("/api/v1/cases", json=case(content_html=HOSTILE), headers=bearer(source_key))
    assert again.status_code == 200 and again.json()["status"] == "unchanged" and len(again.json()["removed"]) == 4
    # the cleaned text itself is clean: the same content, nothing listed
    clean = client.post(
        "/api/v1/cases", json=case(content_html=view["record"]["content_html"]), headers=bearer(source_key)
    )
    assert clean.status_code == 200 and "removed" not in clean.json()


def test_news_batches_name_field_rule_and_position(client: httpx.Client, source_key: str) -> None:
    items = [
        news("DT-1"),
        news("DT-2", title="题" * 201),
        news("DT-3", content_html="<script>only()</script>"),
        news("DT-4", content_html='<p>ok<iframe src="https://x.example"></iframe></p>'),
        news("DT-5", published_on="2026-02-30"),
    ]
    response = client.post("/api/v1/news/batch", json={"items": items}, headers=bearer(source_key))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected", "rejected", "created", "rejected"]
    assert [(e["field"], e["code"]) for e in results[1]["errors"]] == [("items[1].title", "too_long")]
    assert "200" in results[1]["errors"][0]["message"]
    assert [(e["field"], e["code"]) for e in results[2]["errors"]] == [
        ("items[2].content_html", "empty_after_cleaning")
    ]
    assert [(e["field"], e["code"]) for e in results[4]["errors"]] == [("items[4].published_on", "invalid_date")]
    assert [(r["name"], r["line"], r["column"]) for r in results[3]["removed"]] == [("iframe", 1, 6)]
    assert "removed" not in results[0]

    single = client.post("/api/v1/cases", json=case(case_type="表扬", counterpart=DROP), headers=bearer(source_key))
    assert single.status_code == 422 and single.headers["content-type"] == "application/problem+json"
    [error] = single.json()["errors"]
    assert error["field"] == "case_type" and error["code"] == "unknown_value" and "守信激励" in error["message"]


def test_a_case_names_a_natural_person_only_with_a_valid_id(client: httpx.Client, source_key: str) -> None:
    bad = client.post(
        "/api/v1/cases",
        json=case(counterpart={"name": "张三", "category": "natural_person"}),
        headers=bearer(source_key),
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"counterpart.id_type", "counterpart.id_number"}
    good = client.post("/api/v1/cases", json=case(counterpart=person()), headers=bearer(source_key))
    assert good.status_code == 201


def test_articles_are_withdrawn_like_records(client: httpx.Client, source_key: str) -> None:
    assert client.post("/api/v1/news", json=news(), headers=bearer(source_key)).status_code == 201
    withdrawn = client.post(
        "/api/v1/news/DT-2026-000011/withdraw", json={"reason": "other", "note": "重复发布"}, headers=bearer(source_key)
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    view = client.get("/api/v1/news/DT-2026-000011", headers=bearer(source_key)).json()
    assert view["withdrawn"]["reason"] == "other"
    refused = client.post("/api/v1/news", json=news(title="新标题"), headers=bearer(source_key))
    assert refused.status_code == 409


def test_a_key_for_articles_only_sends_articles(client: httpx.Client, make_key: Any) -> None:
    office = make_key("office-cms", "source", ("cases", "news"))
    assert client.post("/api/v1/news", json=news(), headers=bearer(office)).status_code == 201
    assert client.post("/api/v1/licences", json=licence(), headers=bearer(office)).status_code == 403


def test_articles_have_no_deadline_and_stay_out_of_the_rates_and_the_at_risk_view(
    client: httpx.Client, source_key: str, store: Store
) -> None:
    """The choice (README "Articles"): articles are quota items; no due date, no standing, no 公示率, not at risk."""
    for path, body in (
        ("/api/v1/cases", case(published_on="2026-11-02")),
        ("/api/v1/news", news(published_on="2026-11-02")),
        ("/api/v1/licences", licence(decision_date="2026-11-02", valid_from="2026-11-02")),
    ):
        assert client.post(path, json=body, headers=bearer(source_key)).status_code == 201
    view = client.get("/api/v1/cases/AL-2026-000002", headers=bearer(source_key)).json()
    assert {d["target"] for d in view["deliveries"]} == {"portal", "municipal"}
    for d in view["deliveries"]:
        assert d["due_date"] is None and d.get("standing") is None
        assert "quota" in d["due_note"]
    period = {
        "decided_from": dt.date(2026, 11, 1),
        "decided_to": dt.date(2026, 11, 30),
        "as_of": dt.date(2026, 12, 31),
        "as_of_end": end_of_day(dt.date(2026, 12, 31)),
    }
    groups = store.standings(**period)
    assert {g.kind for g in groups} == {"licences"}
    assert sum(g.counts.overdue for g in groups) == 4  # the licence on its four targets; the articles nowhere
    assert store.record_counts(decided_from=period["decided_from"], decided_to=period["decided_to"]) == {
        ("行政审批科", "licences"): 1
    }
    at_risk = store.at_risk(due_by_date=dt.date(2027, 1, 31), limit=100)
    assert {r["kind"] for r in at_risk} == {"licences"}
    assert store.missing_due_dates() == []
