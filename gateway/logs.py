"""Logging: the one place it is configured. Text or JSON lines (``LOG_FORMAT``), operator events with fields,
and a redaction rule that every line passes, whoever logs it (uvicorn, httpx and SQLAlchemy included).

Why the redaction sits in the formatter: it sees the finished line (message, arguments, event fields and any
traceback), so nothing reaches the output unmasked whatever path produced it. Masked: resident ID numbers (first
and last four kept, DEVELOPERS.md), API keys (the ``cgk_`` prefix and six characters kept, as ``key_prefix``
shows them), bearer tokens, and values written as ``secret=…``, ``password=…``, ``token=…``.

Operator events (``event``) are WARNING or INFO lines whose fields are machine-readable: in text as
``name key=value …`` after the usual prefix, in JSON as top-level members beside ``event``; the README's
"Log events" table lists them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from schemas.identifiers import mask_id_number

LogFormat = Literal["text", "json"]

_ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")  # letters around it too ("ID431202…")
_API_KEY = re.compile(r"(cgk_[A-Za-z0-9_-]{6})[A-Za-z0-9_-]+")
_BEARER = re.compile(r"(?i)(bearer\s+)(?!\[redacted\])[^\s\"',;]+")
_SECRET_VALUE = re.compile(
    r"(?i)((?:secret|password|passwd|token|sm3_key|app_secret|client_secret)[\"']?\s*[=:]\s*[\"']?)"
    r"(?!\[redacted\])[^\s\"',;&}]+"
)
_OURS = "_credit_gateway"  # marks the handler ``configure`` installs, so it replaces only its own


def mask(text: str) -> str:
    """Resident ID numbers masked (kept for the callers that mask a single value)."""
    return _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)


def redact(text: str) -> str:
    """Everything a log line must never carry, masked."""
    text = _API_KEY.sub(r"\1…", mask(text))
    text = _BEARER.sub(r"\1[redacted]", text)
    return _SECRET_VALUE.sub(r"\1[redacted]", text)


class MaskIdNumbers(logging.Filter):
    """For handlers configured elsewhere (a test's capture): the same redaction on the record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """One operator event: ``name`` with its fields, as text (``name k=v``) or JSON members."""
    text = " ".join([name, *(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)])
    logger.log(level, "%s", text, extra={"event": name, "fields": fields}, stacklevel=2)


def _text(value: Any) -> str:
    shown = value.isoformat() if isinstance(value, dt.datetime | dt.date) else str(value)
    return orjson.dumps(shown).decode() if (not shown or any(c in shown for c in ' "=')) else shown


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, event, message, the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        fields: Mapping[str, Any] = getattr(record, "fields", None) or {}
        body |= {k: v for k, v in fields.items() if k not in body}
        action = getattr(record, "action", None)
        if action is not None and body["event"] is None:
            body["event"] = action
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(body, default=str).decode())


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Root logging for a process: one stream handler of ours (replacing a previous one of ours, keeping any
    other, such as a test's capture), uvicorn's loggers sent through it, chatty libraries quietened."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, _OURS, False)] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # uvicorn's access log is replaced by ours (gateway.api.access): one line per request, with the key's name
    # and without query values.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request, and APScheduler every job run, at INFO: at the delivery engine's rates that is
    # thousands of lines a second, each formatted and masked, for what the attempt rows already record. Shown
    # only when debugging; their warnings (a skipped run, a failed request) still come through.
    for name in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
