"""The operators' console over HTTP on SQLite and PostgreSQL: sessions, CSRF, roles, and that its pages show and do
what the API shows and does (same figures, same audit entries, with the person as the actor)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from adapters.sandbox.app import create_sandbox
from gateway.app import build_app
from gateway.clock import ManualClock, ShiftableClock, SystemClock
from gateway.housekeeping import Housekeeping
from gateway.people import People
from gateway.settings import Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import tables
from outbox.ingest import Actor
from outbox.people import PeopleStore
from outbox.store import Store
from schemas import deadlines
from tests import live
from tests.conftest import bearer
from tests.factories import COMPANY, NAME_MISMATCH, case, licence, make_uscc, news, penalty, person

PASSWORD = "控制台 long enough pass"
PAGES = (
    "/console/",
    "/console/records",
    "/console/records?q=鹤城",
    "/console/dead-letters",
    "/console/targets",
    "/console/reconciliations",
    "/console/reports",
    "/console/checks",
    "/console/articles",
    "/console/audit",
)
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # verification reads these from the hash


def make_person(store: Store, name: str, role: str) -> None:
    People(PeopleStore(store.db), SystemClock(), hasher=CHEAP).create(
        name=name, role=role, password=PASSWORD, department=None, actor=Actor("test", "test")
    )


@pytest.fixture
def sign_in(base_url: str, store: Store) -> Iterator[Any]:
    opened: list[httpx.Client] = []

    def open_as(name: str, role: str) -> httpx.Client:
        make_person(store, name, role)
        http = httpx.Client(base_url=base_url, timeout=30)
        opened.append(http)
        answer = http.post("/console/login", data={"username": name, "password": PASSWORD})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/"
        return http

    yield open_as
    for http in opened:
        http.close()


def csrf(http: httpx.Client, path: str = "/console/targets") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', http.get(path).text)
    assert found is not None
    return found.group(1)


def audit(store: Store, action: str | None = None) -> list[Any]:
    a = tables.audit_event
    query = sa.select(a).order_by(a.c.id)
    if action is not None:
        query = query.where(a.c.action == action)
    return store.db.read(lambda c: c.execute(query).all())


def field(html: str, target: str, name: str) -> str:
    row = re.search(rf'data-target="{target}">(.*?)</tr>', html, re.S)
    assert row is not None
    value = re.search(rf'data-field="{name}">([^<]*)<', row.group(1))
    assert value is not None
    return value.group(1)


def test_pages_need_a_session_and_a_right_password(base_url: str, store: Store, sign_in: Any) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as anonymous:
        for path in (*PAGES, "/console/keys", "/console/overview.json"):
            answer = anonymous.get(path)
            assert (answer.status_code, answer.headers.get("location")) == (303, "/console/login"), path
        make_person(store, "王五", "operator")
        forged = anonymous.post(
            "/console/login",
            data={"username": "王五", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403 and "cg_session" not in anonymous.cookies
        wrong = anonymous.post("/console/login", data={"username": "王五", "password": "not the password"})
        assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text and 'name="username"' in wrong.text
        assert "cg_session" not in anonymous.cookies
        right = anonymous.post("/console/login", data={"username": "王五", "password": PASSWORD})
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; over HTTPS the flag is set
    admin = sign_in("管理员", "admin")
    for path in (*PAGES, "/console/keys", "/console/users"):
        page = admin.get(path)
        assert page.status_code == 200, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert not re.search(r'(src|href)="(https?:)?//', page.text), path  # nothing from another host


def test_the_overview_shows_the_apis_backlog_and_rate(
    client: httpx.Client, sign_in: Any, source_key: str, operator_key: str
) -> None:
    for n in range(3):  # decided early in the month: overdue by now (unpublished), so the rate is 0 %, not blank
        client.post(
            "/api/v1/licences",
            json=licence(f"XK-{n}", decision_date="2026-11-02", valid_from="2026-11-02"),
            headers=bearer(source_key),
        )
    viewer = sign_in("领导", "viewer")
    html = viewer.get("/console/").text
    targets = client.get("/api/v1/targets", headers=bearer(operator_key)).json()["targets"]
    backlog_states = ("pending", "retry_wait", "in_flight", "awaiting_result")
    for t in targets:
        expected = sum(t["deliveries"].get(s, 0) for s in backlog_states)
        assert field(html, t["target"], "backlog") == str(expected)
    assert sum(int(field(html, t["target"], "backlog")) for t in targets) == 12  # every target takes licences
    rate = client.get("/api/v1/rates", params={"period": "2026-11"}, headers=bearer(operator_key)).json()
    shown = re.search(r'data-field="rate">([^<]*)<', html)
    assert shown is not None and rate["summary"]["total"]["rate"] == 0.0 and shown.group(1) == "0.0%"
    polled = viewer.get("/console/overview.json").json()
    assert polled["rate"] == "0.0%" and polled["targets"]["portal"]["backlog"] == "3"
    assert "<svg" in html and "<polyline" in html  # the 12-month trend, drawn inline


def test_a_viewer_reads_every_page_and_every_action_is_refused(
    client: httpx.Client, store: Store, sign_in: Any, source_key: str
) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    viewer = sign_in("领导", "viewer")
    for path in PAGES:
        assert viewer.get(path).status_code == 200, path
    assert viewer.get("/console/keys").status_code == 403 and viewer.get("/console/users").status_code == 403
    token = csrf(viewer)
    before = len(audit(store))
    actions = {
        "/console/dead-letters": {"op": "requeue", "ids": "1"},
        "/console/targets/portal/pause": {"reason": "x"},
        "/console/targets/portal/resume": {},
        "/console/targets/portal/replay": {"since": "2026-11-01", "confirm": "yes"},
        "/console/targets/portal/reconcile": {},
        "/console/reports": {"period": "2026-10"},
        "/console/keys": {"name": "x", "role": "operator"},
        "/console/keys/revoke": {"prefix": "cgk_"},
        "/console/users": {"name": "x", "role": "admin", "password": PASSWORD},
        "/console/users/disable": {"name": "领导"},
        "/console/users/password": {"name": "领导", "password": PASSWORD + "!"},
    }
    for path, data in actions.items():
        answer = viewer.post(path, data={"csrf": token, **data})
        assert answer.status_code == 403, path
        assert "无权操作" in answer.text
    assert len(audit(store)) == before and not store.paused_targets()
    assert viewer.get("/console/").status_code == 200  # still signed in: nothing was changed


def test_an_action_on_a_target_that_is_not_one_goes_back_with_a_notice(store: Store, sign_in: Any) -> None:
    operator = sign_in("值班员", "operator")
    token = csrf(operator)
    for action in ("pause", "resume", "replay", "reconcile"):
        answer = operator.post(f"/console/targets/county/{action}", data={"csrf": token, "since": "2026-11-01"})
        assert answer.status_code == 303 and "county" in unquote(answer.headers["location"]), action
    assert not store.paused_targets() and not [e for e in audit(store) if e.action.startswith("target.")]


def test_a_form_without_its_csrf_token_is_refused(store: Store, sign_in: Any) -> None:
    operator = sign_in("值班员", "operator")
    for data in ({"reason": "维护"}, {"reason": "维护", "csrf": "forged"}):
        assert operator.post("/console/targets/portal/pause", data=data).status_code == 403
    assert not store.paused_targets()
    elsewhere = {"Origin": "https://evil.example"}  # a page on another site posting the form, token and all
    token = csrf(operator)
    assert operator.post("/console/targets/portal/pause", data={"csrf": token}, headers=elsewhere).status_code == 403
    assert not store.paused_targets()
    done = operator.post(
        "/console/targets/portal/pause",
        data={"reason": "门户维护", "csrf": token},
        headers={"Origin": str(operator.base_url).rstrip("/")},
    )
    assert done.status_code == 303 and store.paused_targets()["portal"]["reason"] == "门户维护"
    [entry] = audit(store, "target.pause")
    assert (entry.actor, entry.role) == ("值班员", "operator")  # as the API writes it, with the person as actor
    log = operator.get("/console/audit", params={"action": "target."}).text
    assert "target.pause" in log and "门户维护" in log and ">值班员<" in log
    operator.post("/console/targets/portal/resume", data={"csrf": csrf(operator)})
    assert not store.paused_targets()
    assert operator.post("/console/logout", data={}).status_code == 403  # signing out is a form too
    assert operator.post("/console/logout", data={"csrf": csrf(operator)}).status_code == 303
    assert operator.get("/console/").status_code == 303


def test_search_by_code_in_full_width_by_name_and_the_timeline_diff(
    client: httpx.Client, sign_in: Any, source_key: str
) -> None:
    first = client.post("/api/v1/licences", json=licence("XK-A"), headers=bearer(source_key)).json()
    client.post("/api/v1/licences", json=licence("XK-A", content="变更后的许可内容"), headers=bearer(source_key))
    other = licence("XK-B")
    other["counterpart"] = {**other["counterpart"], "name": "怀化市另一家公司", "uscc": make_uscc("91431200MA4L7P3K8")}
    second = client.post("/api/v1/licences", json=other, headers=bearer(source_key)).json()
    viewer = sign_in("领导", "viewer")
    full_width = COMPANY.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    found = viewer.get("/console/records", params={"q": full_width}).text
    assert re.findall(r'data-record-id="(\d+)"', found) == [str(first["id"])]
    assert re.findall(r'data-record-id="(\d+)"', viewer.get("/console/records", params={"q": "另一家"}).text) == [
        str(second["id"])
    ]
    assert len(re.findall(r"data-record-id", viewer.get("/console/records", params={"q": "怀化市"}).text)) == 2
    by_id = viewer.get("/console/records", params={"source_id": "XK-B", "kind": "licences"}).text
    assert re.findall(r'data-record-id="(\d+)"', by_id) == [str(second["id"])]
    none = viewer.get("/console/records", params={"q": "鹤城", "from": "2027-01-01"}).text
    assert "没有符合条件的记录" in none
    timeline = viewer.get(f"/console/records/{first['id']}").text
    assert "第 2 版" in timeline and "改动 1 项" in timeline and "变更后的许可内容" in timeline
    assert viewer.get("/console/records/999999").status_code == 404


REJECT = {"reject_rule": NAME_MISMATCH}


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


@pytest.fixture
def worker(settings: Settings, store: Store, sandbox: str) -> Iterator[Worker]:
    point_at_sandbox(settings, sandbox)
    built = Worker(settings, store, build_clients(settings, ShiftableClock()), ShiftableClock())
    yield built
    for c in built.clients.values():
        c.close()


def test_dead_letters_requeued_and_cancelled_from_the_page(
    client: httpx.Client, store: Store, worker: Worker, sign_in: Any, source_key: str, sandbox: str
) -> None:
    httpx.put(f"{sandbox}/_admin/municipal/faults", json=REJECT).raise_for_status()
    for n in range(3):
        client.post(
            "/api/v1/penalties" if False else "/api/v1/licences", json=licence(f"XK-{n}"), headers=bearer(source_key)
        )
    worker.drain("municipal")
    operator = sign_in("值班员", "operator")
    page = operator.get("/console/dead-letters", params={"target": "municipal"}).text
    ids = re.findall(r'data-delivery-id="(\d+)"', page)
    assert len(ids) == 3 and "2004" in page and "名称不一致" in page and 'data-total="3"' in page
    httpx.delete(f"{sandbox}/_admin/municipal/faults")
    token = csrf(operator, "/console/dead-letters")
    done = operator.post(
        "/console/dead-letters", data={"csrf": token, "op": "requeue", "scope": "selected", "ids": [ids[0]]}
    )
    assert done.status_code == 303 and "已重新投递 1 条" in operator.get(done.headers["location"]).text
    [entry] = audit(store, "delivery.requeue")
    assert (entry.actor, entry.role, entry.detail["ids"]) == ("值班员", "operator", [int(ids[0])])
    worker.drain("municipal")
    d = tables.delivery
    states = dict(
        store.db.read(lambda c: c.execute(sa.select(d.c.id, d.c.state).where(d.c.target == "municipal")).all())
    )
    assert states[int(ids[0])] == "published"
    cancelled = operator.post(
        "/console/dead-letters",
        data={"csrf": token, "op": "cancel", "scope": "all", "target": "municipal", "reason": "平台已人工录入"},
    )
    assert "已放弃 2 条" in operator.get(cancelled.headers["location"]).text
    [entry] = audit(store, "delivery.cancel")
    assert entry.actor == "值班员" and sorted(entry.detail["ids"]) == sorted(int(i) for i in ids[1:])


def test_docs_and_their_assets_are_served_by_the_gateway(client: httpx.Client) -> None:
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_attempts_keep_excerpts_without_secrets_or_clear_ids_until_retention_ends(
    client: httpx.Client, settings: Settings, store: Store, worker: Worker, sign_in: Any, source_key: str, sandbox: str
) -> None:
    httpx.put(f"{sandbox}/_admin/municipal/faults", json=REJECT).raise_for_status()
    stored = client.post("/api/v1/licences", json=licence(), headers=bearer(source_key)).json()
    subject = person()
    client.post("/api/v1/penalties", json=penalty(counterpart=subject), headers=bearer(source_key)).raise_for_status()
    for target in ("national", "provincial", "municipal", "portal"):
        worker.drain(target)
    a, e = tables.attempt, tables.exchange_excerpt
    rows = store.db.read(
        lambda c: c.execute(
            sa.select(e.c.request.label("request_excerpt"), e.c.reply.label("reply_excerpt"), a.c.code, e.c.id)
            .select_from(a.outerjoin(e, e.c.id == a.c.excerpt_id))
            .order_by(a.c.id)
        ).all()
    )
    assert rows and all(r.request_excerpt and r.reply_excerpt for r in rows)
    exchanges = {r.id for r in rows}
    assert len(exchanges) < len(rows)  # the licence and the penalty went to a batch target in one request: one row
    assert store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(e)).scalar()) == len(exchanges)
    t = settings.targets
    secrets = [
        t.national.app_secret.get_secret_value(),
        t.provincial.sm3_key.get_secret_value(),
        t.municipal.client_secret.get_secret_value(),
        t.portal.token.get_secret_value(),
    ]
    for r in rows:
        text = r.request_excerpt + r.reply_excerpt
        assert all(s not in text for s in secrets) and subject["id_number"] not in text
        assert len(r.request_excerpt.encode()) <= 8192 and len(r.reply_excerpt.encode()) <= 8192
    assert any(subject["id_number"][:4] + "*" * 10 in r.request_excerpt for r in rows)  # masked, still there
    [rejected] = [r for r in rows if r.code == "2004"]
    assert "名称不一致" in rejected.reply_excerpt and rejected.request_excerpt.startswith("POST ")

    viewer = sign_in("领导", "viewer")
    timeline = viewer.get(f"/console/records/{stored['id']}").text
    assert timeline.count("请求与应答摘录") >= 4 and "名称不一致" in timeline
    [(fined,)] = store.db.read(
        lambda c: c.execute(sa.select(tables.record.c.id).where(tables.record.c.kind == "penalties")).all()
    )
    assert subject["id_number"] not in viewer.get(f"/console/records/{fined}").text  # viewers see it masked
    operator = sign_in("值班员", "operator")
    assert subject["id_number"] in operator.get(f"/console/records/{fined}").text  # the credit office sees it

    made = SystemClock().now()
    rules = deadlines.from_settings(settings.deadlines)
    early = Housekeeping(settings, store, ManualClock(made + dt.timedelta(days=89)), rules, dict)
    assert early.prune_excerpts() == 0
    late = Housekeeping(settings, store, ManualClock(made + dt.timedelta(days=91)), rules, dict)
    assert late.prune_excerpts() == len(exchanges)
    kept = store.db.read(
        lambda c: c.execute(sa.select(e.c.id, a.c.outcome).select_from(a.outerjoin(e, e.c.id == a.c.excerpt_id))).all()
    )
    assert len(kept) == len(rows) and all(r.id is None for r in kept)  # the attempts stay, their excerpts gone
    assert "请求与应答摘录" not in viewer.get(f"/console/records/{stored['id']}").text


def test_the_articles_page_lists_cases_and_news_with_their_titles(
    client: httpx.Client, sign_in: Any, source_key: str
) -> None:
    made = client.post("/api/v1/cases", json=case(title="某建筑公司守信激励典型案例"), headers=bearer(source_key))
    assert made.status_code == 201, made.text
    client.post("/api/v1/news", json=news(title="全市信用信息归集工作推进会召开"), headers=bearer(source_key))
    html = sign_in("领导", "viewer").get("/console/articles").text
    assert "某建筑公司守信激励典型案例" in html and "全市信用信息归集工作推进会召开" in html
    assert f'data-record-id="{made.json()["id"]}"' in html


def test_the_checks_page_lists_the_newest_checks_first(
    settings: Settings, store: Store, clock: ManualClock, operator_key: str
) -> None:
    settings.targets.national.enabled = False  # local records only: no platform to ask
    make_person(store, "领导", "viewer")
    with live.serve(build_app(settings, store=store, clock=clock)) as url, httpx.Client(base_url=url) as http:
        for matter in ("第一次查询事项", "第二次查询事项", "第三次查询事项"):
            body = {
                "subject": {"uscc": COMPANY},
                "matter": matter,
                "matter_type": "licence",
                "department": "行政审批科",
                "requested_by": "李四",
            }
            assert http.post("/api/v1/credit-checks", json=body, headers=bearer(operator_key)).status_code == 201
        http.post("/console/login", data={"username": "领导", "password": PASSWORD})
        html = http.get("/console/checks").text
    assert html.index("第三次查询事项") < html.index("第二次查询事项") < html.index("第一次查询事项")


def test_reconcile_now_from_the_page_shows_the_run_and_its_findings(
    worker: Worker, client: httpx.Client, store: Store, sign_in: Any, source_key: str
) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    worker.drain("portal")
    operator = sign_in("值班员", "operator")
    done = operator.post("/console/targets/portal/reconcile", data={"csrf": csrf(operator)})
    assert done.status_code == 303 and re.fullmatch(r"/console/reconciliations/\d+", done.headers["location"])
    run = operator.get(done.headers["location"])
    assert run.status_code == 200 and "完成" in run.text and "平台缺失" in run.text
    assert operator.get("/console/reconciliations").status_code == 200
    assert operator.get("/console/targets").status_code == 200  # its recent runs listed there too
    [entry] = audit(store, "reconcile.run")
    assert entry.actor == "值班员"
