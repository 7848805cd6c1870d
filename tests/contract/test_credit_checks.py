"""Credit checks before approval (issue 11) through the API, on SQLite and PostgreSQL, with the sandbox's national
subject query over loopback. Today is 2026-11-25 in Huaihua (tests.conftest.NOW)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from gateway.app import build_app
from gateway.clock import ManualClock
from gateway.settings import CheckSettings, Settings
from gateway.subjects import NationalSubjects
from gateway.targets import point_at_sandbox
from outbox import tables
from outbox.errors import StoreError
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.factories import commitment, list_change, make_resident_id, make_uscc, penalty, person


@pytest.fixture
def sandbox(clock: ManualClock) -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0, now=lambda: clock.now().timestamp())) as url:
        yield url


@pytest.fixture
def deadline() -> float:
    """How long a check waits for the national platform: long enough for a loaded machine unless a test wants
    the deadline itself."""
    return 10.0


@pytest.fixture
def gateway(
    settings: Settings, store: Store, clock: ManualClock, sandbox: str, deadline: float
) -> Iterator[httpx.Client]:
    point_at_sandbox(settings, sandbox)
    settings.checks = CheckSettings(national_deadline_seconds=deadline)
    with live.serve(build_app(settings, store=store, clock=clock)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


@pytest.fixture
def checker(make_key: Any) -> str:
    return str(make_key("approval-office", "source", ("credit-checks",)))


def subject(n: int) -> str:
    return make_uscc(f"9143120{n:02d}MA4L7P2K")


def post(client: httpx.Client, key: str, kind: str, record: dict[str, Any]) -> None:
    answer = client.post(f"/api/v1/{kind}", json=record, headers=bearer(key))
    assert answer.status_code in (200, 201), answer.text


def check(client: httpx.Client, key: str, who: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {
        "subject": who,
        "matter": "建筑工程施工许可",
        "matter_type": "licence",
        "department": "行政审批科",
        "requested_by": "李四",
        **extra,
    }
    return client.post("/api/v1/credit-checks", json=body, headers=bearer(key))


def checked(client: httpx.Client, key: str, code: str) -> dict[str, Any]:
    answer = check(client, key, {"uscc": code})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def audit(store: Store, action: str) -> list[Any]:
    a = tables.audit_event
    return store.db.read(lambda c: c.execute(sa.select(a).where(a.c.action == action).order_by(a.c.id)).all())


def test_black_list_in_force_restricts_removed_or_expired_does_not(
    gateway: httpx.Client, source_key: str, checker: str
) -> None:
    black, removed, expired = subject(1), subject(2), subject(3)
    post(gateway, source_key, "list-changes", list_change("MD-1", counterpart__uscc=black))
    post(gateway, source_key, "list-changes", list_change("MD-2", counterpart__uscc=removed))
    post(
        gateway,
        source_key,
        "list-changes",
        list_change("MD-3", counterpart__uscc=removed, action="remove", effective_date="2026-11-01", expiry_date=None),
    )
    post(gateway, source_key, "list-changes", list_change("MD-4", counterpart__uscc=expired, expiry_date="2026-11-24"))

    found = checked(gateway, checker, black)
    assert found["advice"] == "restrict"
    assert [e["list_name"] for e in found["findings"]["black_list"]] == ["建筑市场黑名单"]
    assert found["reasons"] == ["黑名单「建筑市场黑名单」（怀化市住房和城乡建设局，2026-09-01 起，local）"]
    assert found["sources"] == ["local", "national"]
    for code in (removed, expired):
        gone = checked(gateway, checker, code)
        assert gone["advice"] == "no_record" and gone["findings"]["black_list"] == [] and gone["reasons"] == []


def test_serious_penalty_cautions_inside_its_period_and_not_after(
    gateway: httpx.Client, source_key: str, checker: str, clock: ManualClock
) -> None:
    code, mild = subject(4), subject(5)
    post(
        gateway,
        source_key,
        "penalties",
        penalty(
            "CF-1",
            counterpart__uscc=code,
            penalty_categories=["revoke_licence"],
            content="吊销建筑业企业资质证书",
            suspended_licence="建筑业企业资质证书 D243000001",
            fine_amount=None,
        ),
    )
    post(gateway, source_key, "penalties", penalty("CF-2", counterpart__uscc=mild))  # fine + warning: not serious
    found = checked(gateway, checker, code)
    assert found["advice"] == "caution"
    [p] = found["findings"]["penalties"]
    assert p["serious"] is True and p["publish_until"] == "2027-10-17" and p["categories"] == ["revoke_licence"]
    assert found["reasons"][0].startswith("严重失信行政处罚 怀建罚决〔2026〕45号")
    assert checked(gateway, checker, mild)["advice"] == "no_record"  # found, but not serious

    clock.set(dt.datetime(2027, 10, 18, 2, 0, tzinfo=dt.UTC))  # the day after 公示截止期 2027-10-17
    after = checked(gateway, checker, code)
    assert after["advice"] == "no_record" and after["findings"]["penalties"] == []


def test_source_mark_overrides_the_categories(gateway: httpx.Client, source_key: str, checker: str) -> None:
    code = subject(6)
    post(gateway, source_key, "penalties", penalty("CF-3", counterpart__uscc=code, serious=True))
    assert checked(gateway, checker, code)["advice"] == "caution"


def test_unfulfilled_commitment_cautions(gateway: httpx.Client, source_key: str, checker: str) -> None:
    code, kept = subject(7), subject(8)
    post(
        gateway,
        source_key,
        "commitments",
        commitment(
            "CN-1",
            counterpart__uscc=code,
            fulfilment="unfulfilled",
            unfulfilled_content="未按期补交材料",
            liability_action="约谈并列入重点监管",
        ),
    )
    post(gateway, source_key, "commitments", commitment("CN-2", counterpart__uscc=kept, fulfilment="fulfilled"))
    found = checked(gateway, checker, code)
    assert found["advice"] == "caution"
    assert found["reasons"] == ["信用承诺未履行「申请办理房地产开发企业资质证书」（unfulfilled，2026-11-02，local）"]
    assert checked(gateway, checker, kept)["advice"] == "no_record"


def test_red_list_with_nothing_negative_rewards(gateway: httpx.Client, source_key: str, checker: str) -> None:
    code, mixed = subject(9), subject(10)
    red = {"list": "red", "list_name": "守信激励红名单", "expiry_date": None}
    post(gateway, source_key, "list-changes", list_change("MD-5", counterpart__uscc=code, **red))
    post(gateway, source_key, "list-changes", list_change("MD-6", counterpart__uscc=mixed, **red))
    post(gateway, source_key, "penalties", penalty("CF-4", counterpart__uscc=mixed))
    found = checked(gateway, checker, code)
    assert found["advice"] == "reward" and found["reasons"][0].startswith("红名单「守信激励红名单」")
    assert checked(gateway, checker, mixed)["advice"] == "no_record"  # a penalty in its period is negative


def test_subject_known_only_to_national(gateway: httpx.Client, sandbox: str, checker: str) -> None:
    code = subject(11)
    seeded = {
        "code": code,
        "name": "外地建设有限公司",
        "lists": [{"list": "黑名单", "list_name": "失信被执行人", "unit": "某市中级人民法院", "since": "2026/03/01"}],
        "penalties": [
            {
                "decision_number": "长市监罚〔2026〕9号",
                "unit": "长沙市市场监督管理局",
                "decision_date": "2026/05/01",
                "publish_until": "2029/05/01",
                "categories": ["罚款"],
                "serious": False,
            }
        ],
    }
    httpx.post(f"{sandbox}/_admin/national/subjects", json=seeded).raise_for_status()
    found = checked(gateway, checker, code)
    assert found["sources"] == ["local", "national"] and found["subject"]["name"] == "外地建设有限公司"
    assert found["advice"] == "restrict"
    assert found["findings"]["black_list"][0]["sources"] == ["national"]
    assert found["findings"]["penalties"][0]["categories"] == ["fine"]


def test_entry_in_both_shown_once_with_both_sources(
    gateway: httpx.Client, sandbox: str, source_key: str, checker: str
) -> None:
    code = subject(12)
    post(gateway, source_key, "penalties", penalty("CF-5", counterpart__uscc=code))
    same = {"decision_number": "怀建罚决〔2026〕45号", "unit": "怀化市住房和城乡建设局", "decision_date": "2026/10/10",
            "publish_until": "2027/10/17", "categories": ["罚款", "警告"], "serious": False}  # fmt: skip
    httpx.post(f"{sandbox}/_admin/national/subjects", json={"code": code, "penalties": [same]}).raise_for_status()
    [p] = checked(gateway, checker, code)["findings"]["penalties"]
    assert p["sources"] == ["local", "national"]


@pytest.mark.parametrize("deadline", [1.0])
def test_slow_national_answers_within_the_deadline_from_local_data(
    gateway: httpx.Client, sandbox: str, source_key: str, checker: str, deadline: float
) -> None:
    code = subject(13)
    post(gateway, source_key, "list-changes", list_change("MD-7", counterpart__uscc=code))
    httpx.put(f"{sandbox}/_admin/national/faults", json={"latency_ms": 4000}).raise_for_status()
    started = time.monotonic()
    found = checked(gateway, checker, code)
    elapsed = time.monotonic() - started
    assert elapsed < deadline + 1.5, f"answered after {elapsed:.2f} s"
    assert found["sources"] == ["local", "national:timeout"] and found["national"] == "timeout"
    assert found["advice"] == "restrict"


def test_closing_ends_a_query_under_way_and_blames_the_platform_for_nothing(clock: ManualClock, sandbox: str) -> None:
    settings = Settings(checks=CheckSettings(national_deadline_seconds=60))  # no storage: once, not per database
    point_at_sandbox(settings, sandbox)
    # answered after 3 s unless closing cuts it short (the sandbox's handler sleeps it out, delaying its own stop)
    httpx.put(f"{sandbox}/_admin/national/faults", json={"latency_ms": 3000}).raise_for_status()
    subjects = NationalSubjects(settings, clock)
    pending = subjects.start(subject(15))
    assert isinstance(pending, Future)
    asked = httpx.get(f"{sandbox}/_admin/national/wait", params={"requests": 1, "timeout": 10}, timeout=15)
    assert asked.status_code == 200, "the query never reached the platform"
    subjects.close()  # returns once the query's thread has ended: nothing of it runs on
    assert pending.done() and pending.result().status == "unavailable"
    assert subjects.gate.health.consecutive_failures == 0 and subjects.gate.health.last_failure_at is None


def test_disabled_national_says_so(settings: Settings, store: Store, clock: ManualClock, checker: str) -> None:
    settings.targets.national.enabled = False
    with live.serve(build_app(settings, store=store, clock=clock)) as url, httpx.Client(base_url=url) as client:
        found = checked(client, checker, subject(14))
    assert found["sources"] == ["local", "national:disabled"] and found["advice"] == "no_record"


def test_who_may_check(gateway: httpx.Client, source_key: str, operator_key: str, checker: str) -> None:
    code = {"uscc": subject(15)}
    refused = check(gateway, source_key, code)
    assert refused.status_code == 403 and "credit-checks" in refused.json()["detail"]
    assert gateway.get("/api/v1/credit-checks", headers=bearer(source_key)).status_code == 403
    assert check(gateway, operator_key, code).status_code == 201
    assert check(gateway, checker, code).status_code == 201
    assert gateway.post("/api/v1/credit-checks", json={}).status_code == 401
    document = gateway.get("/openapi.json").json()
    body = document["paths"]["/api/v1/credit-checks"]["post"]["requestBody"]["content"]["application/json"]
    schemas = document["components"]["schemas"]
    assert body["schema"] == {"$ref": "#/components/schemas/CheckBody"}
    named = schemas["CheckBody"]["properties"]["subject"]["$ref"].rsplit("/", 1)[-1]
    assert {"uscc", "id_type", "id_number"} <= set(schemas[named]["properties"])
    # a key for credit checks only may not send records
    assert gateway.post("/api/v1/penalties", json=penalty(), headers=bearer(checker)).status_code == 403


@pytest.mark.parametrize(
    ("who", "field", "code"),
    [
        ({"name": "怀化市鹤城建筑工程有限公司"}, "subject", "identifier_required"),
        ({"uscc": "91431200MA4L7P2K86"}, "subject.uscc", "invalid_uscc"),
        ({"id_type": "resident_id", "id_number": make_resident_id()[:-1] + "0"}, "subject.id_number", None),
    ],
)
def test_bad_subjects_refused(gateway: httpx.Client, checker: str, who: dict[str, Any], field: str, code: Any) -> None:
    answer = check(gateway, checker, who)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["field"] == field and (code is None or error["code"] == code)


def test_subject_normalised_like_ingest(gateway: httpx.Client, source_key: str, checker: str) -> None:
    code = subject(16)
    post(gateway, source_key, "list-changes", list_change("MD-8", counterpart__uscc=code))
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in code.lower())  # full width, lower case
    answer = check(gateway, checker, {"uscc": f"  {wide} "})
    assert answer.status_code == 201 and answer.json()["advice"] == "restrict"


def test_kept_audited_masked_and_never_altered(
    gateway: httpx.Client, store: Store, source_key: str, checker: str, operator_key: str, caplog: Any
) -> None:
    someone = person("王五")
    number = someone["id_number"]
    post(
        gateway,
        source_key,
        "commitments",
        commitment(
            "CN-3", counterpart=someone, fulfilment="partial", unfulfilled_content="未按期提交", liability_action="约谈"
        ),
    )
    with caplog.at_level(logging.INFO):
        answer = check(gateway, checker, {"id_type": "身份证", "id_number": number.lower()})
    assert answer.status_code == 201
    found = answer.json()
    assert found["advice"] == "caution" and found["subject"]["code"] == number[:4] + "*" * 10 + number[-4:]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("gateway"))
    assert "4312**********" in ours and number not in ours  # the handler's filter masks everyone else's lines
    assert number not in answer.text, answer.text
    assert found["asked_by"] == "approval-office" and found["requested_by"] == "李四"
    assert found["measure"] is None

    measured = gateway.post(
        f"/api/v1/credit-checks/{found['id']}/measure",
        json={"measure": "strict_review", "note": "加强审查"},
        headers=bearer(operator_key),
    )
    assert measured.status_code == 200 and measured.json()["measure"]["measure"] == "strict_review"
    again = gateway.post(
        f"/api/v1/credit-checks/{found['id']}/measure", json={"measure": "refused"}, headers=bearer(checker)
    ).json()
    assert [m["measure"] for m in again["measures"]] == ["strict_review", "refused"]
    assert again["measure"]["by"] == "approval-office"
    missing = gateway.post("/api/v1/credit-checks/999999/measure", json={"measure": "refused"}, headers=bearer(checker))
    assert missing.status_code == 404
    bad = gateway.post(f"/api/v1/credit-checks/{found['id']}/measure", json={"measure": "x"}, headers=bearer(checker))
    assert bad.status_code == 422 and bad.json()["errors"][0] == {
        "field": "measure",
        "code": "unknown_value",
        "message": "'x' is not one of: refused, strict_review, fast_track, no_effect, other",
    }

    [run] = audit(store, "check.run")
    assert run.actor == "approval-office" and run.detail["subject"] == found["subject"]["code"]
    assert number not in str(run.detail)
    assert [(m.actor, m.detail["measure"]) for m in audit(store, "check.measure")] == [
        ("credit-office", "strict_review"),
        ("approval-office", "refused"),
    ]
    stored = store.db.read(lambda c: c.execute(sa.select(tables.credit_check.c.subject_code)).scalar_one())
    assert stored == number  # kept in clear for the bureau

    kept = gateway.get(f"/api/v1/credit-checks/{found['id']}", headers=bearer(checker)).json()
    assert kept["findings"] == found["findings"] and kept["matter"] == "建筑工程施工许可"
    with pytest.raises(StoreError):
        store.db.transact(lambda c: c.execute(sa.update(tables.credit_check).values(advice="reward")))
    assert gateway.get(f"/api/v1/credit-checks/{found['id']}", headers=bearer(checker)).json()["advice"] == "caution"


def test_listing_filters(gateway: httpx.Client, source_key: str, checker: str, clock: ManualClock) -> None:
    post(gateway, source_key, "list-changes", list_change("MD-9", counterpart__uscc=subject(17)))
    checked(gateway, checker, subject(17))
    assert check(gateway, checker, {"uscc": subject(18)}, department="建工科").status_code == 201
    clock.set(dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC))
    checked(gateway, checker, subject(18))

    def ids(**params: Any) -> list[str]:
        answer = gateway.get("/api/v1/credit-checks", params=params, headers=bearer(checker))
        assert answer.status_code == 200, answer.text
        return [i["advice"] + "@" + i["department"] for i in answer.json()["items"]]

    assert ids() == ["restrict@行政审批科", "no_record@建工科", "no_record@行政审批科"]
    assert ids(**{"from": "2026-11-26"}) == ["no_record@行政审批科"]
    assert ids(to="2026-11-25", department="建工科") == ["no_record@建工科"]
    assert ids(advice="restrict") == ["restrict@行政审批科"]
    bad = gateway.get("/api/v1/credit-checks", params={"advice": "maybe"}, headers=bearer(checker))
    assert bad.status_code == 422


def test_a_record_delivered_to_national_is_found_in_both(
    gateway: httpx.Client, settings: Settings, store: Store, clock: ManualClock, source_key: str, checker: str
) -> None:
    from gateway.targets import build_clients
    from gateway.worker import Worker

    code = subject(19)
    post(gateway, source_key, "list-changes", list_change("MD-10", counterpart__uscc=code))
    worker = Worker(settings, store, build_clients(settings, clock), clock)
    try:
        worker.drain("national")
    finally:
        for client in worker.clients.values():
            client.close()
    found = checked(gateway, checker, code)
    [entry] = found["findings"]["black_list"]
    assert entry["sources"] == ["local", "national"] and found["reasons"][0].endswith("local+national）")


def test_national_breaker_opens_and_checks_stop_asking(
    settings: Settings, store: Store, clock: ManualClock, sandbox: str, checker: str
) -> None:
    point_at_sandbox(settings, sandbox)
    settings.delivery.breaker_failures = 1
    httpx.put(f"{sandbox}/_admin/national/faults", json={"error_rate": 1}).raise_for_status()
    with live.serve(build_app(settings, store=store, clock=clock)) as url, httpx.Client(base_url=url) as client:
        assert checked(client, checker, subject(20))["sources"] == ["local", "national:unavailable"]
        before = httpx.get(f"{sandbox}/_admin/national/stats").json()
        assert checked(client, checker, subject(20))["sources"] == ["local", "national:breaker_open"]
        clock.advance(dt.timedelta(seconds=settings.delivery.breaker_open_seconds + 1))
        httpx.delete(f"{sandbox}/_admin/national/faults").raise_for_status()
        assert checked(client, checker, subject(20))["sources"] == ["local", "national"]  # the probe succeeds
    assert before["received_items"] == 0  # the subject query is not a delivery


def test_national_throttling_holds_further_queries(
    settings: Settings, store: Store, clock: ManualClock, sandbox: str, checker: str
) -> None:
    point_at_sandbox(settings, sandbox)
    throttle = {"throttle_rate": 1, "retry_after_seconds": 60}
    httpx.put(f"{sandbox}/_admin/national/faults", json=throttle).raise_for_status()
    with live.serve(build_app(settings, store=store, clock=clock)) as url, httpx.Client(base_url=url) as client:
        assert checked(client, checker, subject(21))["national"] == "throttled"
        httpx.delete(f"{sandbox}/_admin/national/faults").raise_for_status()
        assert checked(client, checker, subject(21))["national"] == "throttled"  # held by Retry-After, not asked
        clock.advance(dt.timedelta(seconds=61))
        assert checked(client, checker, subject(21))["national"] == "answered"


def test_retention_deletes_old_checks_only_when_set(settings: Settings, store: Store, clock: ManualClock) -> None:
    from gateway.checks import CheckBody, CreditChecks
    from gateway.housekeeping import Housekeeping
    from gateway.jobs import Jobs
    from outbox.ingest import Actor
    from schemas import deadlines

    settings.targets.national.enabled = False
    service = CreditChecks(settings, store, clock)
    body = CheckBody.model_validate(
        {
            "subject": {"uscc": subject(22)},
            "matter": "m",
            "matter_type": "other",
            "department": "d",
            "requested_by": "r",
        }
    )
    try:
        service.run(Actor("cli", "operator"), body)
        clock.advance(dt.timedelta(days=40))
        service.run(Actor("cli", "operator"), body)
        assert service.purge("cli") == 0  # default: kept
        settings.checks = CheckSettings(retention_days=30)
        assert service.purge("cli") == 1
        assert [c["check_date"] for c in service.listing(start=None, end=None, department=None, advice=None)] == [
            "2027-01-04"
        ]
        [event] = audit(store, "check.purge")
        assert event.actor == "cli" and event.detail["deleted"] == 1
        clock.advance(dt.timedelta(days=31))  # the nightly expiry job applies the same retention
        Jobs(Housekeeping(settings, store, clock, deadlines.from_settings(settings.deadlines), dict)).expiry()
        assert service.listing(start=None, end=None, department=None, advice=None) == []
        assert [e.actor for e in audit(store, "check.purge")] == ["cli", "scheduler"]
    finally:
        service.close()
