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
from urllib.parse import urlencode

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
from schemas.enums import Kind

MAX_BODY = 5 * 1024 * 1024
PAGE_SIZE = 500


@dataclass(frozen=True)
class NationalConfig:
    app_key: str
    app_secret: str
    area: str = "431200"  # 怀化市, for 承诺编码
    max_items: int = 500


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


def _code(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    return (None if code is None else str(code)), (None if body.get("message") is None else str(body["message"]))
