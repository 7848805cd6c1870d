"""The log lines an operator acts on, from a real run: a breaker opening, a dead delivery, a pause and a resume,
and the access log; each a WARNING (access: INFO) with its fields, as text and as JSON lines (``LOG_FORMAT``)."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import logs
from gateway.app import build_app
from gateway.clock import ShiftableClock
from gateway.settings import Settings
from gateway.targets import build_clients
from gateway.worker import Worker
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.e2e.test_cli import env_for, free_port, running
from tests.e2e.test_worker import clock, delivery_settings, sandbox, state_counts  # noqa: F401 - fixtures
from tests.factories import licence, make_resident_id


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_a_breaker_opening_and_a_dead_delivery_are_warnings_with_fields(
    settings: Settings,
    store: Store,
    clock: ShiftableClock,  # noqa: F811
    source_key: str,
    operator_key: str,
    sandbox: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivery_settings(settings, sandbox, breaker_failures=2, breaker_open_seconds=600, initial_backoff_seconds=0.1)
    settled: queue.Queue[tuple[str, int]] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: settled.put((t, n)))
    httpx.put(f"{sandbox}/_admin/municipal/faults", json={"error_rate": 1.0}).raise_for_status()
    rule = {"field": "XK_XDR_MC", "equals": "怀化市鹤城建筑工程有限公司", "code": "2004", "message": "名称不一致"}
    httpx.put(f"{sandbox}/_admin/national/faults", json={"reject_rule": rule}).raise_for_status()
    caplog.set_level(logging.INFO)
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        posted = httpx.post(f"{base}/api/v1/licences?dry=&note=x", json=licence(), headers=bearer(source_key))
        assert posted.status_code == 201, posted.text
        deadline = time.monotonic() + 20
        while not (events(caplog, "breaker_opened") and events(caplog, "delivery_dead")):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            worker.wake(["municipal"])  # its retries come due after 0.1 s; no 30 s tick
            with contextlib.suppress(queue.Empty):
                settled.get(timeout=0.5)
        paused = httpx.post(
            f"{base}/api/v1/targets/portal/pause", json={"reason": "升级"}, headers=bearer(operator_key)
        )
        assert paused.status_code == 200, paused.text
        assert httpx.post(f"{base}/api/v1/targets/portal/resume", headers=bearer(operator_key)).status_code == 200

    [opened] = events(caplog, "breaker_opened")  # one transition, one line
    assert opened.levelno == logging.WARNING
    fields: dict[str, Any] = opened.fields  # type: ignore[attr-defined]
    assert fields["target"] == "municipal" and fields["consecutive_failures"] == 2
    assert fields["code"] == "500" and fields["open_seconds"] == 600
    [dead] = events(caplog, "delivery_dead")
    assert dead.levelno == logging.WARNING
    assert dead.fields["target"] == "national" and dead.fields["code"] == "2004"  # type: ignore[attr-defined]
    assert dead.fields["message"] == "名称不一致" and dead.fields["delivery_id"] > 0  # type: ignore[attr-defined]
    [pause] = events(caplog, "target_paused")
    assert pause.levelno == logging.WARNING
    assert pause.fields == {"target": "portal", "by": "credit-office", "reason": "升级"}  # type: ignore[attr-defined]
    assert [r.levelno for r in events(caplog, "target_resumed")] == [logging.WARNING]

    ingest = next(r for r in events(caplog, "access") if r.fields["method"] == "POST")  # type: ignore[attr-defined]
    assert ingest.levelno == logging.INFO
    assert ingest.fields["path"] == "/api/v1/licences" and ingest.fields["query"] == "dry,note"  # type: ignore[attr-defined]
    assert ingest.fields["status"] == 201 and ingest.fields["key"] == "approval-system"  # type: ignore[attr-defined]
    assert ingest.fields["duration_ms"] >= 0  # type: ignore[attr-defined]
    assert source_key not in ingest.getMessage() and "x" not in str(ingest.fields["query"])  # type: ignore[attr-defined]

    # the same lines as JSON: the fields are members, beside the event's name
    line = json.loads(logs.JsonFormatter().format(opened))
    assert (line["level"], line["event"], line["target"], line["code"]) == (
        "WARNING",
        "breaker_opened",
        "municipal",
        "500",
    )
    text = logs.TextFormatter().format(dead)
    assert "WARNING gateway.delivery delivery_dead" in text and "target=national" in text and "code=2004" in text


def test_serve_with_log_format_json_writes_json_lines(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, CREDIT_GATEWAY_PORT=str(port), CREDIT_GATEWAY_LOG_FORMAT="json")
    number = make_resident_id()
    with running(["serve"], env, tmp_path) as seen:
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets?q={number}", headers=bearer("cgk_" + "z" * 40))
        assert answer.status_code == 401
    # read after the server stopped (gracefully, finishing its requests): every line it wrote is in ``seen``
    lines = [json.loads(line) for line in seen if line.startswith("{")]
    assert lines and len(lines) == len([line for line in seen if line.strip()])  # every line is JSON
    [access] = [x for x in lines if x["event"] == "access"]
    shown = (access["level"], access["path"], access["query"], access["status"])
    assert shown == ("INFO", "/api/v1/targets", "q", 401)
    assert access["key"] is None  # an unknown key has no name; the key itself is never logged
    assert number not in "".join(seen) and "z" * 20 not in "".join(seen)
