"""Issue 8's API defects, each against a real server on SQLite and PostgreSQL: keys before bodies, no 500s from
out-of-range values, every error a problem document, and the OpenAPI document telling what the API answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.settings import Settings
from outbox import errors as store_errors
from outbox.store import Store
from tests.conftest import bearer
from tests.contract.test_api import problem
from tests.factories import licence

# Every route that takes a body: (path, a valid body for it).
BODY_ROUTES = [
    ("/api/v1/dead-letters/cancel", {"ids": [1]}),
    ("/api/v1/dead-letters/requeue", {"ids": [1]}),
    ("/api/v1/reports", {"period": "2026-10"}),
    ("/api/v1/targets/national/pause", {"reason": "维护"}),
    ("/api/v1/targets/national/replay", {"since": "2026-11-01"}),
    # a source key needs the kind credit-checks for these: the approval-system key of the tests has not
    ("/api/v1/credit-checks", {"subject": {"uscc": "91431200MA4L7P2K85"}, "matter": "施工", "department": "建工科"}),
    ("/api/v1/credit-checks/1/measure", {"measure": "refused"}),
    ("/api/v1/licences", licence()),
    ("/api/v1/licences/batch", {"items": [licence()]}),
    ("/api/v1/licences/XK-2026-000123/withdraw", {"reason": "revoked"}),
]
OPERATOR_BODY_ROUTES = [path for path, _ in BODY_ROUTES[:7]]
HUNDRED_MB = 100 * 1024 * 1024


def raw_exchange(base_url: str, head: str, body_part: bytes, timeout: float = 20) -> tuple[int, dict[str, str], bytes]:
    """Send a request's head and only the first part of its body, then read the answer.

    A server that reads the whole body before answering would wait for bytes that never come: the socket times out
    and the test fails, rather than passing after reading 100 MB.
    """
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body_part)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed without answering: {data!r}"
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "the server closed mid-answer"
            rest += chunk
    return int(lines[0].split()[1]), headers, rest


def partial_post(base_url: str, path: str, declared: int, headers: dict[str, str] | None = None) -> Any:
    fields = {"Host": "gateway", "Content-Type": "application/json", "Content-Length": str(declared)}
    fields |= headers or {}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return raw_exchange(base_url, head, b'{"ids": [' + b"1, " * 300)


# -- defect 2: authenticate first, then read the body under the limit ------------------------------------------


@pytest.mark.parametrize("path", [p for p, _ in BODY_ROUTES])
def test_a_request_without_a_key_is_401_before_its_body_is_read(base_url: str, path: str) -> None:
    status, headers, body = partial_post(base_url, path, HUNDRED_MB)
    assert status == 401 and headers["content-type"] == "application/problem+json", body
    assert b"unauthorised" in body
    status, _, _ = partial_post(base_url, path, HUNDRED_MB, {"Authorization": "Bearer cgk_unknown"})
    assert status == 401


@pytest.mark.parametrize("path", OPERATOR_BODY_ROUTES)
def test_a_source_key_on_an_operator_route_is_403_before_its_body_is_read(
    base_url: str, source_key: str, path: str
) -> None:
    status, _, body = partial_post(base_url, path, HUNDRED_MB, bearer(source_key))
    assert status == 403, body


@pytest.mark.parametrize("path", [p for p, _ in BODY_ROUTES])
def test_an_over_limit_body_with_a_key_is_413_before_it_is_read(
    base_url: str, operator_key: str, source_key: str, path: str
) -> None:
    key = operator_key if path in OPERATOR_BODY_ROUTES else source_key
    status, headers, body = partial_post(base_url, path, HUNDRED_MB, bearer(key))
    assert status == 413 and headers["content-type"] == "application/problem+json", body
    assert b"body-too-large" in body


@pytest.mark.parametrize("path", OPERATOR_BODY_ROUTES)
def test_an_over_limit_chunked_body_is_413(
    client: httpx.Client, operator_key: str, settings: Settings, path: str
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"ids": ['
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"1," * 32768

    response = client.post(path, content=chunks(), headers=bearer(operator_key) | {"Content-Type": "application/json"})
    assert problem(response, 413)["type"].endswith("body-too-large")


def test_no_route_lets_fastapi_read_a_body_before_the_key(settings: Settings, store: Store) -> None:
    """FastAPI parses a declared body parameter before any dependency runs: no route may declare one."""
    from fastapi.routing import APIRoute

    from gateway.app import build_app

    app = build_app(settings, store=store)
    routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    spec = app.openapi()
    documented = [p for p, ops in spec["paths"].items() for op in ops.values() if "requestBody" in op]
    assert len(documented) == len(BODY_ROUTES)
    for route in routes:
        assert route.body_field is None, f"{route.path} declares a body FastAPI reads before the key check"


# -- defect 3: out-of-range values are 422 naming the field; 500s carry no internals ---------------------------

OUT_OF_RANGE = [
    ("GET", "/api/v1/reports/9223372036854775808", None, "report_id"),
    ("GET", "/api/v1/reports/0", None, "report_id"),
    ("GET", "/api/v1/reconciliations/9223372036854775808", None, "run_id"),
    ("POST", "/api/v1/dead-letters/requeue", {"ids": [9223372036854775808]}, "ids[0]"),
    ("POST", "/api/v1/dead-letters/cancel", {"ids": [-1]}, "ids[0]"),
    ("POST", "/api/v1/dead-letters/cancel", {"ids": [1e300]}, "ids[0]"),
    ("GET", "/api/v1/rates?period=9999", None, "period"),
    ("GET", "/api/v1/rates?period=0001-Q1", None, "period"),
    ("GET", "/api/v1/rates?period=0001-01-01", None, "period"),
    ("GET", "/api/v1/rates?period=2026-10&as_of=9999-12-31", None, "as_of"),
    ("GET", "/api/v1/rates?period=2026-10&as_of=0001-01-01", None, "as_of"),
    ("POST", "/api/v1/reports", {"period": "0001-01"}, "period"),
    ("POST", "/api/v1/reports", {"period": "2026-10", "as_of": "9999-12-31"}, "as_of"),
    ("POST", "/api/v1/targets/national/replay", {"since": "0001-01-01", "dry_run": True}, "since"),
    ("POST", "/api/v1/targets/national/replay", {"since": "9999-12-31", "dry_run": True}, "since"),
    ("GET", "/api/v1/dead-letters?offset=9223372036854775808", None, "offset"),
    ("GET", "/api/v1/dead-letters?target=a%00b", None, "target"),
    ("GET", "/api/v1/licences/a%00b", None, "source_id"),
    ("POST", "/api/v1/dead-letters/cancel", {"ids": [1], "reason": "a\u0000b"}, "reason"),
    # what the document refuses, the API refuses too (pydantic alone would coerce these)
    ("POST", "/api/v1/dead-letters/cancel", {"ids": ["1"]}, "ids[0]"),
    ("POST", "/api/v1/dead-letters/cancel", {"ids": [1.5]}, "ids[0]"),
    ("POST", "/api/v1/targets/national/replay", {"since": "2026-11-01T00:00:00"}, "since"),
    ("POST", "/api/v1/targets/national/replay", {"since": 1699977600}, "since"),
    ("POST", "/api/v1/targets/national/replay", {"since": "2026-11-01", "dry_run": "yes"}, "dry_run"),
    ("GET", "/api/v1/rates?period=%202026-10", None, "period"),
    ("GET", "/api/v1/rates?period=%D9%A2%D9%A0%D9%A2%D9%A6", None, "period"),  # Arabic-Indic digits
]


@pytest.mark.parametrize(("method", "path", "body", "field"), OUT_OF_RANGE)
def test_out_of_range_values_are_422_naming_the_field(
    client: httpx.Client, operator_key: str, method: str, path: str, body: Any, field: str
) -> None:
    response = client.request(method, path, json=body, headers=bearer(operator_key))
    found = problem(response, 422)
    assert found["type"].endswith("validation-failed")
    assert field in {e["field"] for e in found["errors"]}, found


def test_a_database_failure_is_500_without_the_drivers_message(
    client: httpx.Client, operator_key: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(**_: Any) -> Any:
        raise store_errors.StoreError("database error: ProgrammingError: SELECT * FROM report_run WHERE id = 1")

    monkeypatch.setattr(store, "reports", fails)
    found = problem(client.get("/api/v1/reports", headers=bearer(operator_key)), 500)
    text = str(found)
    assert "SELECT" not in text and "ProgrammingError" not in text and "database error" not in text


def test_an_unexpected_error_is_500_without_a_traceback(
    client: httpx.Client, operator_key: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crashes(**_: Any) -> Any:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(store, "reports", crashes)
    found = problem(client.get("/api/v1/reports", headers=bearer(operator_key)), 500)
    assert found["type"].endswith("internal-error")
    assert "Traceback" not in str(found) and "SQLite" not in str(found) and "Overflow" not in str(found)


# -- defect 4: every error in the documented format ------------------------------------------------------------


@pytest.mark.parametrize("path", OPERATOR_BODY_ROUTES)
def test_operator_routes_answer_bad_bodies_like_the_ingest_routes(
    client: httpx.Client, operator_key: str, path: str
) -> None:
    json_headers = bearer(operator_key) | {"Content-Type": "application/json"}
    malformed = problem(client.post(path, content=b'{"ids": [', headers=json_headers), 400)
    assert malformed["type"].endswith("malformed-json") and malformed["errors"][0]["code"] == "malformed_json"
    deep = problem(client.post(path, content=b"[" * 5000 + b"]" * 5000, headers=json_headers), 400)
    assert deep["type"].endswith("malformed-json")
    text = bearer(operator_key) | {"Content-Type": "text/plain"}
    assert problem(client.post(path, content=b'{"ids": [1]}', headers=text), 415)["type"].endswith(
        "unsupported-media-type"
    )
    wrong = problem(client.post(path, json={"unknown": 1}, headers=bearer(operator_key)), 422)
    assert "unknown" in {e["field"] for e in wrong["errors"]}


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 415),
        ("application/json; charset=latin-1", 415),
        ("application/json; charset=ISO-8859-1", 415),
        ("text/plain", 415),
        ("application/json; charset=UTF-8", 201),
        ('application/json;charset="utf-8"', 200),
    ],
)
def test_ingest_takes_json_in_utf8_only(
    client: httpx.Client, source_key: str, content_type: str | None, status: int
) -> None:
    import orjson

    headers = bearer(source_key) | ({"Content-Type": content_type} if content_type else {})
    if status == 200:  # the same record again
        client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    request = client.build_request("POST", "/api/v1/licences", content=orjson.dumps(licence()), headers=headers)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    response = client.send(request)
    if status == 415:
        assert problem(response, 415)["type"].endswith("unsupported-media-type")
    else:
        assert response.status_code == status, response.text


def test_a_long_url_is_a_problem_document(base_url: str, operator_key: str) -> None:
    query = "x=" + "a" * 20_000
    head = f"GET /api/v1/targets?{query} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {operator_key}\r\n\r\n"
    status, headers, body = raw_exchange(base_url, head, b"")
    assert status == 414 and headers["content-type"] == "application/problem+json", body
    assert b"uri-too-long" in body


def test_a_batch_with_an_unknown_field_is_refused(client: httpx.Client, source_key: str) -> None:
    body = {"items": [licence()], "atomic": True}
    found = problem(client.post("/api/v1/licences/batch", json=body, headers=bearer(source_key)), 422)
    assert [(e["field"], e["code"]) for e in found["errors"]] == [("atomic", "unknown_field")]


def test_a_repeated_or_empty_parameter_is_422_naming_it(client: httpx.Client, operator_key: str) -> None:
    repeated = problem(
        client.get("/api/v1/dead-letters?target=national&target=portal", headers=bearer(operator_key)), 422
    )
    assert [(e["field"], e["code"]) for e in repeated["errors"]] == [("target", "repeated")]
    empty = problem(client.get("/api/v1/reconciliations?target=", headers=bearer(operator_key)), 422)
    assert [e["field"] for e in empty["errors"]] == ["target"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/api/v1/targets", "GET, HEAD"),
        ("DELETE", "/api/v1/targets", "GET, HEAD"),
        ("OPTIONS", "/api/v1/licences", "POST"),
        ("GET", "/api/v1/licences/batch", "GET, HEAD, POST"),  # /{kind}/{source_id} reads it as a source_id
        ("PUT", "/api/v1/reports", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/dead-letters/cancel", "POST"),
    ],
)
def test_a_wrong_method_names_what_the_path_allows(
    client: httpx.Client, operator_key: str, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path, headers=bearer(operator_key))
    if method == "GET" and path.endswith("/batch"):
        assert response.status_code == 404  # GET /{kind}/{source_id}: no record "batch"
        return
    found = problem(response, 405)
    assert response.headers["allow"] == allowed
    assert found["type"].endswith("method-not-allowed") and method in found["detail"]


# -- defect 8 (OpenAPI half): the document says what the API answers ---------------------------------------------


def test_openapi_documents_answers_errors_and_security(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    open_paths = {"/healthz", "/readyz", "/metrics"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
            assert successes, where
            for status, response in successes.items():
                schema = next(iter(response.get("content", {}).values()), {}).get("schema")
                assert schema, f"{where} {status} has no schema"
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"] == {"application/problem+json": {"schema": problem_ref}}, where
            if path in open_paths:
                continue
            assert op["security"] == [{"bearer": []}], where
            assert "401" in op["responses"], where
            if op.get("parameters") or "requestBody" in op:
                assert "422" in op["responses"], where
            if "requestBody" in op:
                assert {"400", "413", "415"} <= set(op["responses"]), where
    post_one = spec["paths"]["/api/v1/{kind}"]["post"]["responses"]
    assert post_one["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Stored"}
    assert post_one["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Stored"}
    withdraw = spec["paths"]["/api/v1/{kind}/{source_id}/withdraw"]["post"]
    body_ref = withdraw["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]["required"] == ["reason"]
    view = spec["paths"]["/api/v1/{kind}/{source_id}"]["get"]["responses"]["200"]
    assert view["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RecordView"}
    assert client.get("/docs").status_code == 200
