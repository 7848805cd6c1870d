"""The HTTP API of CONTRACT.md against a real server, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from outbox import tables
from outbox.store import Store
from tests.conftest import bearer
from tests.factories import DROP, commitment, licence, make_resident_id, penalty, person


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:credit-gateway:problem:")
    assert body["title"] and body["detail"]
    return body


def count(store: Store, table: sa.Table) -> int:
    return store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_post_creates_then_answers_repeats_with_200(client: httpx.Client, source_key: str) -> None:
    first = client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    assert first.status_code == 201
    body = first.json()
    assert body["source_id"] == "XK-2026-000123" and body["version"] == 1 and isinstance(body["id"], int)
    assert body["deliveries"] == [
        {"target": t, "state": "pending"} for t in ("national", "provincial", "municipal", "portal")
    ]
    repeat = client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    assert repeat.status_code == 200 and repeat.json()["id"] == body["id"] and repeat.json()["status"] == "unchanged"
    changed = client.post("/api/v1/licences", json=licence(content="改"), headers=bearer(source_key))
    assert changed.status_code == 201 and changed.json()["version"] == 2


def test_authentication_and_permissions(client: httpx.Client, make_key: Any, store: Store) -> None:
    body = problem(client.post("/api/v1/licences", json=licence()), 401)
    assert "Bearer" in body["detail"]
    problem(client.post("/api/v1/licences", json=licence(), headers=bearer("cgk_nope")), 401)
    penalties_only = make_key("enforcement-system", "source", ("penalties",))
    denied = problem(client.post("/api/v1/licences", json=licence(), headers=bearer(penalties_only)), 403)
    assert "licences" in denied["detail"]
    assert client.post("/api/v1/penalties", json=penalty(), headers=bearer(penalties_only)).status_code == 201
    operator = make_key("credit-office", "operator")
    problem(client.post("/api/v1/penalties", json=penalty(), headers=bearer(operator)), 403)
    assert count(store, tables.record) == 1


def test_revoked_key_stops_working(client: httpx.Client, store: Store, source_key: str) -> None:
    assert client.get("/api/v1/licences/none", headers=bearer(source_key)).status_code == 404
    [info] = store.list_keys()
    store.revoke_key(prefix=info.prefix, actor="test", now=info.created_at)
    problem(client.get("/api/v1/licences/none", headers=bearer(source_key)), 401)


def test_invalid_record_is_422_naming_fields_and_writes_nothing(
    client: httpx.Client, source_key: str, store: Store
) -> None:
    bad = licence(counterpart__uscc="91431200MA4L7P2K86", valid_to="2026-01-01", department=DROP)
    body = problem(client.post("/api/v1/licences", json=bad, headers=bearer(source_key)), 422)
    found = {(e["field"], e["code"]) for e in body["errors"]}
    assert ("department", "required") in found and ("counterpart.uscc", "invalid_uscc") in found
    assert all(e["message"] for e in body["errors"])
    assert count(store, tables.record) == 0 and count(store, tables.delivery) == 0
    [audit] = store.db.read(
        lambda c: c.execute(sa.select(tables.audit_event).where(tables.audit_event.c.action != "key.create")).all()
    )
    assert (audit.action, audit.actor, audit.kind) == ("ingest.refused", "approval-system", "licences")
    assert {"field": "counterpart.uscc", "code": "invalid_uscc"} in audit.detail["errors"]


def test_malformed_json_oversized_body_and_wrong_media_type(
    client: httpx.Client, source_key: str, settings: Any
) -> None:
    headers = bearer(source_key) | {"Content-Type": "application/json"}
    body = problem(client.post("/api/v1/licences", content=b'{"source_id": ', headers=headers), 400)
    assert body["errors"][0]["code"] == "malformed_json"
    problem(client.post("/api/v1/licences", content=b"\xff\xfe{}", headers=headers), 400)
    huge = b'{"items": [' + b'"' + b"x" * settings.max_body_bytes + b'"]}'
    problem(client.post("/api/v1/licences/batch", content=huge, headers=headers), 413)
    form = bearer(source_key) | {"Content-Type": "application/x-www-form-urlencoded"}
    problem(client.post("/api/v1/licences", content=b"a=1", headers=form), 415)


def test_unknown_kind_and_route(client: httpx.Client, source_key: str) -> None:
    body = problem(client.post("/api/v1/permits", json=licence(), headers=bearer(source_key)), 404)
    assert "licences" in body["detail"]
    problem(client.get("/api/v2/nothing", headers=bearer(source_key)), 404)


def test_batch_reports_each_item(client: httpx.Client, source_key: str, store: Store) -> None:
    client.post("/api/v1/licences", json=licence("OLD"), headers=bearer(source_key))
    items = [
        licence("N1"),
        licence("N2", decision_date="2026-02-30"),
        licence("OLD", content="改"),
        licence("OLD", content="改"),  # the same again: answered like the first
        licence("N3", counterpart=person()),
        licence("OLD", content="又改"),  # other content for a source_id already in the batch
        "not a record",
    ]
    response = client.post("/api/v1/licences/batch", json={"items": items}, headers=bearer(source_key))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["status"] for r in results] == [
        "created",
        "rejected",
        "updated",
        "unchanged",
        "created",
        "rejected",
        "rejected",
    ]
    assert results[1]["errors"][0]["field"] == "items[1].decision_date"
    assert results[2]["version"] == 2 and results[3]["id"] == results[2]["id"]
    assert results[5]["errors"][0] == {
        "field": "items[5].source_id",
        "code": "duplicate_source_id",
        "message": results[5]["errors"][0]["message"],
    }
    assert results[6]["errors"][0]["field"] == "items[6]"
    assert count(store, tables.record) == 3


def test_atomic_batch_stores_all_or_none(client: httpx.Client, source_key: str, store: Store) -> None:
    items = [licence("A1"), licence("A2", status="maybe")]
    body = problem(
        client.post("/api/v1/licences/batch?atomic=true", json={"items": items}, headers=bearer(source_key)), 422
    )
    assert body["errors"][0]["field"] == "items[1].status"
    assert count(store, tables.record) == 0
    ok = client.post("/api/v1/licences/batch?atomic=true", json={"items": items[:1]}, headers=bearer(source_key))
    assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "created"


def test_atomic_batch_refuses_a_withdrawn_record(client: httpx.Client, source_key: str, store: Store) -> None:
    client.post("/api/v1/licences", json=licence("W"), headers=bearer(source_key))
    client.post("/api/v1/licences/W/withdraw", json={"reason": "revoked"}, headers=bearer(source_key))
    body = problem(
        client.post(
            "/api/v1/licences/batch?atomic=true",
            json={"items": [licence("N"), licence("W", content="新")]},
            headers=bearer(source_key),
        ),
        422,
    )
    assert body["errors"] == [
        {"field": "items[1].source_id", "code": "record_withdrawn", "message": body["errors"][0]["message"]}
    ]
    assert count(store, tables.record) == 1


def test_batch_limits(client: httpx.Client, source_key: str) -> None:
    problem(client.post("/api/v1/licences/batch", json=[licence()], headers=bearer(source_key)), 422)
    body = problem(
        client.post("/api/v1/licences/batch", json={"items": [licence()] * 1001}, headers=bearer(source_key)), 413
    )
    assert body["errors"][0]["code"] == "too_many_items"


def test_withdraw_and_view(client: httpx.Client, source_key: str, operator_key: str) -> None:
    client.post("/api/v1/penalties", json=penalty(), headers=bearer(source_key))
    problem(
        client.post(
            "/api/v1/penalties/CF-2026-000045/withdraw", json={"reason": "forgiven"}, headers=bearer(source_key)
        ),
        422,
    )
    done = client.post(
        "/api/v1/penalties/CF-2026-000045/withdraw",
        json={"reason": "credit_repair", "note": "信用修复决定书〔2026〕1号"},
        headers=bearer(source_key),
    )
    assert done.status_code == 200 and done.json()["status"] == "withdrawn"
    problem(client.post("/api/v1/penalties", json=penalty(content="新"), headers=bearer(source_key)), 409)
    view = client.get("/api/v1/penalties/CF-2026-000045", headers=bearer(source_key)).json()
    assert view["kind"] == "penalties" and view["version"] == 1 and view["record"]["fine_amount"] == "0.2"
    assert view["withdrawn"]["reason"] == "credit_repair" and view["withdrawn"]["note"].startswith("信用修复")
    ops = {(d["operation"], d["state"]) for d in view["deliveries"]}
    assert ops == {("publish", "superseded"), ("withdraw", "cancelled")}
    assert all({"due_date", "published_at", "attempts"} <= set(d) for d in view["deliveries"])
    by_operator = client.get("/api/v1/penalties/CF-2026-000045", headers=bearer(operator_key))
    assert by_operator.status_code == 200 and by_operator.json()["id"] == view["id"]
    problem(client.post("/api/v1/penalties/nope/withdraw", json={"reason": "other"}, headers=bearer(source_key)), 404)


def test_sources_see_only_their_own_records(client: httpx.Client, source_key: str, make_key: Any) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    other = make_key("other-system", "source")
    problem(client.get("/api/v1/licences/XK-2026-000123", headers=bearer(other)), 404)


def test_id_numbers_never_appear_in_logs(
    client: httpx.Client, source_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.logs import MaskIdNumbers

    caplog.handler.addFilter(MaskIdNumbers())
    number = make_resident_id(born="19911111")
    client.post(
        "/api/v1/licences", json=licence(counterpart=person() | {"id_number": number}), headers=bearer(source_key)
    )
    client.get(f"/api/v1/licences/{number}", headers=bearer(source_key))
    assert number not in caplog.text


def test_health_readiness_metrics_and_docs(client: httpx.Client, source_key: str) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["schema"] == "current"
    client.post("/api/v1/commitments", json=commitment(), headers=bearer(source_key))
    metrics = client.get("/metrics").text
    assert 'credit_gateway_ingested_items_total{kind="commitments",status="created"} 1.0' in metrics
    spec = client.get("/openapi.json").json()
    assert "/api/v1/{kind}/batch" in spec["paths"] and "Licence" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_large_batch_is_stored_in_one_request(client: httpx.Client, source_key: str) -> None:
    raw = orjson.dumps({"items": [licence(f"B{i}") for i in range(200)]})
    response = client.post(
        "/api/v1/licences/batch", content=raw, headers=bearer(source_key) | {"Content-Type": "application/json"}
    )
    assert [r["status"] for r in response.json()["results"]] == ["created"] * 200
