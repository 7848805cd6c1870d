"""national: 全国信用信息共享平台 / 信用中国 (PROTOCOLS.md "national"): signed JSON batches, two-stage results.

The batch id is derived from the item keys, so a batch re-sent after a timeout carries the same id and the
platform answers with the first receipt instead of taking the items twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from adapters import fields, replies
from adapters.base import (
    Accepted,
    Exchange,
    HoldingsPage,
    Item,
    Outcome,
    Plan,
    Received,
    Rejected,
    Reply,
    ReplyError,
    Request,
    Retryable,
    next_page,
)
from adapters.signing import national_signature
from schemas.enums import Kind, ListType, PenaltyCategory

MAX_BODY = 5 * 1024 * 1024
PAGE_SIZE = 500


@dataclass(frozen=True)
class NationalConfig:
    app_key: str
    app_secret: str
    area: str = "431200"  # 怀化市, for 承诺编码
    max_items: int = 500


@dataclass(frozen=True, slots=True)
class SubjectListEntry:
    """A red- or black-list entry the platform holds about a subject (any reporting unit)."""

    list: str  # "red" | "black"
    list_name: str
    unit: str
    since: dt.date | None
    until: dt.date | None


@dataclass(frozen=True, slots=True)
class SubjectPenalty:
    decision_number: str
    unit: str
    decision_date: dt.date | None
    publish_until: dt.date | None
    categories: tuple[str, ...]  # PenaltyCategory codes; unknown labels kept as sent
    serious: bool


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """The national subject query's answer (PROTOCOLS.md "national: subject query")."""

    code: str
    name: str | None
    lists: tuple[SubjectListEntry, ...]
    penalties: tuple[SubjectPenalty, ...]


def batch_id(keys: Sequence[str]) -> str:
    return "b-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


class National:
    name = "national"
    two_stage = True

    def __init__(self, config: NationalConfig, nonce: Callable[[], str] = lambda: secrets.token_hex(16)) -> None:
        self.config = config
        self.max_items = min(config.max_items, 500)
        self._nonce = nonce

    # -- requests ------------------------------------------------------------------------------------------

    def signed(self, method: str, path: str, body: bytes, now: dt.datetime) -> Request:
        timestamp = int(now.timestamp() * 1000)
        nonce = self._nonce()
        headers = {
            "Content-Type": "application/json",
            "X-App-Key": self.config.app_key,
            "X-Timestamp": str(timestamp),
            "X-Nonce": nonce,
            "X-Signature": national_signature(self.config.app_secret, method, path, timestamp, nonce, body),
        }
        return Request(method, path, headers, body)

    def expected_fields(self, item: Item) -> dict[str, str]:
        return fields.item_codes(item, area=self.config.area)

    def item(self, item: Item) -> dict[str, Any]:
        return fields.envelope(item, area=self.config.area, data_key="data", with_reason=True)

    def plan(self, items: Sequence[Item], *, now: dt.datetime) -> Plan:
        exchanges: list[Exchange] = []
        for start in range(0, len(items), self.max_items):
            exchanges += self._batches([self.item(i) for i in items[start : start + self.max_items]], now)
        return Plan(exchanges)

    def _batches(self, entries: list[dict[str, Any]], now: dt.datetime) -> list[Exchange]:
        keys = tuple(e["key"] for e in entries)
        body = orjson.dumps({"batch_id": batch_id(keys), "items": entries})
        if len(body) > MAX_BODY and len(entries) > 1:  # the 5 MB cap: halve until each part fits
            half = len(entries) // 2
            return self._batches(entries[:half], now) + self._batches(entries[half:], now)
        return [Exchange(self.signed("POST", "/api/v1/batches", body, now), keys)]

    def results_exchange(self, receipt: str, *, now: dt.datetime) -> Exchange:
        return Exchange(self.signed("GET", f"/api/v1/batches/{receipt}", b"", now), ())

    def holdings_exchange(self, kind: Kind, page: str | None, *, now: dt.datetime) -> Exchange:
        query = urlencode({"type": fields.TYPE_CODES[kind], "page": page or "1", "page_size": PAGE_SIZE})
        return Exchange(self.signed("GET", f"/api/v1/records?{query}", b"", now), ())

    def subject_exchange(self, code: str, *, now: dt.datetime) -> Exchange:
        """The signed subject query (审批前信用查询) for a USCC or an 18-character ID number."""
        return Exchange(self.signed("GET", f"/api/v1/subjects/{quote(code, safe='')}", b"", now), ())

    # -- replies -------------------------------------------------------------------------------------------

    def interpret(self, exchange: Exchange, reply: Reply) -> list[Outcome]:
        keys = exchange.keys
        try:
            body = replies.json_body(reply)
        except ReplyError as exc:
            return replies.transient_http(keys, reply) or replies.unreadable(keys, exc)
        code, message = _code(body)
        transient = replies.transient_http(keys, reply, code)
        if transient is not None:
            return transient
        if reply.status in (200, 202) and code == "0":
            receipt = (body.get("data") or {}).get("receipt_id")
            if not isinstance(receipt, str) or not receipt:
                return replies.unreadable(keys, ReplyError("malformed_reply", "receipt without receipt_id"))
            return [Received(k, receipt) for k in keys]
        return [Rejected(k, code or str(reply.status), message or f"HTTP {reply.status}") for k in keys]

    def interpret_results(self, exchange: Exchange, reply: Reply, keys: Sequence[str] = ()) -> list[Outcome] | None:
        """Per-item business results of a receipt; None while processing. ``keys``: the items we sent with it."""
        try:
            body = replies.json_body(reply)
        except ReplyError as exc:
            return replies.transient_http(keys, reply) or replies.unreadable(keys, exc)
        code, message = _code(body)
        if reply.status != 200 or code != "0":
            return replies.transient_http(keys, reply, code) or [
                Retryable(k, code or str(reply.status), message or "result query failed") for k in keys
            ]
        data = body.get("data") or {}
        if data.get("status") != "finished":
            return None
        found: dict[str, Outcome] = {}
        for entry in data.get("items") or []:
            key = entry.get("key")
            if not isinstance(key, str) or key in found:  # duplicate acknowledgements: the first one counts
                continue
            if entry.get("result") == "accepted":
                found[key] = Accepted(key, str(entry.get("processed_at") or "accepted"))
            else:
                found[key] = Rejected(
                    key,
                    str(entry.get("error_code") or "rejected"),
                    str(entry.get("error_message") or "rejected by the platform"),
                )
        wanted = list(keys) or list(found)
        return [found.get(k) or Retryable(k, "missing_result", "the platform's result omits this item") for k in wanted]

    def interpret_holdings(self, kind: Kind, reply: Reply, page: str | None = None) -> HoldingsPage:
        body = replies.json_body(reply)
        if reply.status != 200 or _code(body)[0] != "0":
            raise ReplyError("holdings_failed", f"holdings query failed: HTTP {reply.status} {_code(body)}")
        data = body.get("data") or {}
        items = data.get("items") or []
        total = int(data.get("total") or 0)
        holdings = [fields.json_holding(i, kind, "data") for i in items]
        return HoldingsPage(holdings, next_page(page, PAGE_SIZE, total, len(items)), total)


def interpret_subject(reply: Reply) -> SubjectReport:
    """The subject query's reply, read without trusting it; anything else than a good answer is a ReplyError.

    The code of the error is the platform's (``4290`` when throttled, HTTP status otherwise) so the caller can
    tell "the platform is down" from "the platform asked us to wait".
    """
    body = replies.json_body(reply)
    code, message = _code(body)
    if reply.status != 200 or code != "0":
        raise ReplyError(code or str(reply.status), message or f"subject query failed: HTTP {reply.status}")
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise ReplyError("malformed_reply", "subject query answer without data.code")
    try:
        lists = tuple(_list_entry(e) for e in _objects(data.get("lists")))
        penalties = tuple(_penalty(p) for p in _objects(data.get("penalties")))
    except (TypeError, ValueError) as exc:
        raise ReplyError("malformed_reply", f"subject query answer is not as the protocol says: {exc}") from None
    name = data.get("name")
    return SubjectReport(data["code"], name if isinstance(name, str) and name else None, lists, penalties)


def _objects(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise TypeError("expected a list of objects")
    return value


def _date(value: Any) -> dt.date | None:
    """Dates as the platforms write them (``YYYY/MM/DD``), ISO accepted too; absent or empty is None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TypeError(f"date {value!r} is not a string")
    return dt.date.fromisoformat(value.strip().replace("/", "-"))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _list_entry(entry: dict[str, Any]) -> SubjectListEntry:
    kind = ListType.parse(_text(entry.get("list")))
    if kind is None:
        raise ValueError(f"list {entry.get('list')!r} is neither 红名单 nor 黑名单")
    return SubjectListEntry(
        kind.value,
        _text(entry.get("list_name")),
        _text(entry.get("unit")),
        _date(entry.get("since")),
        _date(entry.get("until")),
    )


def _penalty(entry: dict[str, Any]) -> SubjectPenalty:
    raw = entry.get("categories") or []
    parts = raw.split(";") if isinstance(raw, str) else raw
    if not isinstance(parts, list):
        raise TypeError("categories must be a list or a ;-joined string")
    categories = []
    for part in parts:
        text = _text(part)
        member = PenaltyCategory.parse(text.split("-", 1)[0]) if text else None
        if text:
            categories.append(member.value if member is not None else text)
    number = _text(entry.get("decision_number"))
    if not number:
        raise ValueError("a penalty without decision_number")
    return SubjectPenalty(
        number,
        _text(entry.get("unit")),
        _date(entry.get("decision_date")),
        _date(entry.get("publish_until")),
        tuple(categories),
        entry.get("serious") is True,
    )


def _code(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    return (None if code is None else str(code)), (None if body.get("message") is None else str(body["message"]))
