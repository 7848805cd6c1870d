"""No resident ID number reaches a log line in clear, whoever writes it."""

from __future__ import annotations

import json
import logging

import pytest

from gateway import logs
from gateway.api import access
from gateway.logs import JsonFormatter, MaskIdNumbers, TextFormatter, configure, event, mask, redact
from tests.factories import COMPANY, make_resident_id


def test_mask_hides_id_numbers_but_not_other_codes() -> None:
    number = make_resident_id()
    text = mask(f"refused {number} for {COMPANY} at 20261125103000123")
    assert number not in text
    assert f"{number[:4]}**********{number[-4:]}" in text
    assert COMPANY in text  # organisations' codes are public


def test_filter_masks_records_from_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    number = make_resident_id()
    logger = logging.getLogger("uvicorn.access")
    caplog.handler.addFilter(MaskIdNumbers())
    with caplog.at_level(logging.INFO):
        logger.info('"GET /api/v1/licences?q=%s HTTP/1.1" 200', number)
    assert number not in caplog.text
    assert number[-4:] in caplog.text


def test_redaction_covers_keys_tokens_and_secrets() -> None:
    key = "cgk_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0u1v"
    number = make_resident_id()
    text = redact(
        f"key {key} header Authorization: Bearer sekrit-token-value client_secret=hunter22 password: pw1 ID{number}"
    )
    assert key not in text and key[:10] + "…" in text  # the prefix operators know keys by
    assert "sekrit-token-value" not in text and "Bearer [redacted]" in text
    assert "hunter22" not in text and "pw1" not in text
    assert number not in text  # letters before it do not hide it from the mask


def test_json_lines_carry_the_event_fields_and_stay_redacted() -> None:
    number = make_resident_id()
    logger = logging.getLogger("gateway.test")
    record = logger.makeRecord(
        "gateway.test", logging.WARNING, __file__, 1, "%s", (f"delivery_dead message={number}",), None,
        extra={"event": "delivery_dead", "fields": {"target": "national", "message": f"拒绝 {number}"}},
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["event"], line["target"]) == (
        "WARNING", "gateway.test", "delivery_dead", "national",
    )  # fmt: skip
    assert number not in json.dumps(line, ensure_ascii=False) and number[-4:] in line["message"]
    assert TextFormatter().format(record).endswith(f"WARNING gateway.test delivery_dead message={mask(number)}")


def test_event_writes_fields_as_text_and_as_record_attributes(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        event(logging.getLogger("gateway.gate"), logging.WARNING, "breaker_opened", target="municipal", code=None,
              message="answered HTTP 500", failures=3)  # fmt: skip
    [record] = caplog.records
    assert record.getMessage() == 'breaker_opened target=municipal message="answered HTTP 500" failures=3'
    assert record.event == "breaker_opened" and record.fields["failures"] == 3  # type: ignore[attr-defined]


def test_configure_replaces_only_its_own_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored afterwards
    monkeypatch.setattr(root, "level", root.level)
    other = logging.NullHandler()
    root.addHandler(other)
    configure("INFO", "json")
    configure("WARNING", "json")
    ours = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1 and other in root.handlers and root.level == logging.WARNING
    assert logging.getLogger("uvicorn.access").disabled  # our access log replaces it


def test_the_session_check_sees_a_leak_when_redaction_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import _SessionLog

    monkeypatch.setattr(logs, "redact", lambda text: text)  # as if a path skipped the rule
    collector = _SessionLog()
    number = make_resident_id()
    collector.emit(logging.makeLogRecord({"msg": "posted %s with cgk_%s", "args": (number, "x" * 30)}))
    assert len(collector.leaks) == 2 and all("an API key" in x and "an ID number" in x for x in collector.leaks)


@pytest.mark.parametrize(
    ("root_path", "path", "logged"),
    [
        ("", "/api/v1/targets", "/api/v1/targets"),
        ("/sandbox", "/sandbox/national/api/v1/batches", "/sandbox/national/api/v1/batches"),  # Starlette's mount
        ("/gateway", "/api/v1/targets", "/gateway/api/v1/targets"),  # a proxy's prefix, in root_path only
    ],
)
def test_the_access_log_names_the_path_the_client_sent(root_path: str, path: str, logged: str) -> None:
    assert access._full_path({"type": "http", "root_path": root_path, "path": path}) == logged
