"""municipal: 信用怀化 (PROTOCOLS.md "municipal"): JSON over OAuth2 client credentials; results in the reply.

Records go to ``/api/records`` (≤ 200 a request); articles (典型案例 AL, 工作动态 DT) to ``/api/articles`` (≤ 50 and
≤ 5 MB a request: bodies of up to 100,000 characters would pass 5 MB well before 50 items).

The bearer token is not the adapter's business: ``adapters.auth.ClientCredentials`` adds it (and refreshes it
before expiry, and once on 401), so these mappings stay pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
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
    Rejected,
    Reply,
    ReplyError,
    Request,
    Retryable,
)
from schemas.enums import ARTICLE_KINDS, Kind

TOKEN_PATH = "/oauth/token"
ARTICLE_ITEMS = 50
ARTICLE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class MunicipalConfig:
    client_id: str
    client_secret: str
    area: str = "431200"
    max_items: int = 200


class Municipal:
    name = "municipal"
    two_stage = False

    def __init__(self, config: MunicipalConfig) -> None:
        self.config = config
        self.max_items = min(config.max_items, 200)

    def expected_fields(self, item: Item) -> dict[str, str]:
        return fields.item_codes(item, area=self.config.area)

    def item(self, item: Item) -> dict[str, Any]:
        return fields.envelope(item, area=self.config.area, data_key="fields", with_reason=False)

    def plan(self, items: Sequence[Item], *, now: dt.datetime) -> Plan:
        records = [i for i in items if i.kind not in ARTICLE_KINDS]
        exchanges = []
        for start in range(0, len(records), self.max_items):
            chunk = records[start : start + self.max_items]
            exchanges.append(_post("/api/records", chunk, [orjson.dumps(self.item(i)) for i in chunk]))
        return Plan(exchanges + self._articles([i for i in items if i.kind in ARTICLE_KINDS]))

    def _articles(self, items: Sequence[Item]) -> list[Exchange]:
        """Articles in requests of at most 50 items and 5 MB (an item alone over 5 MB still goes, alone: the
        platform's answer says what it makes of it)."""
        exchanges: list[Exchange] = []
        chunk: list[Item] = []
        bodies: list[bytes] = []
        size = 2  # the brackets
        for item in items:
            body = orjson.dumps(self.item(item))
            if chunk and (len(chunk) == min(ARTICLE_ITEMS, self.max_items) or size + len(body) + 1 > ARTICLE_BYTES):
                exchanges.append(_post("/api/articles", chunk, bodies))
                chunk, bodies, size = [], [], 2
            chunk.append(item)
            bodies.append(body)
            size += len(body) + 1
        if chunk:
            exchanges.append(_post("/api/articles", chunk, bodies))
        return exchanges

    def token_request(self) -> Request:
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
            }
        ).encode()
        return Request("POST", TOKEN_PATH, {"Content-Type": "application/x-www-form-urlencoded"}, form)

    def holdings_exchange(self, kind: Kind, page: str | None, *, now: dt.datetime) -> Exchange:
        query = {"type": fields.TYPE_CODES[kind], "limit": 500} | ({"cursor": page} if page else {})
        path = "/api/articles" if kind in ARTICLE_KINDS else "/api/records"
        return Exchange(Request("GET", f"{path}?{urlencode(query)}"), ())

    def interpret(self, exchange: Exchange, reply: Reply) -> list[Outcome]:
        keys = exchange.keys
        transient = replies.transient_http(keys, reply)
        if transient is not None:
            return transient
        try:
            body = replies.json_body(reply)
        except ReplyError as exc:
            return replies.unreadable(keys, exc)
        if reply.status != 200 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            return [Rejected(k, str(reply.status), str(message or f"HTTP {reply.status}")) for k in keys]
        found: dict[str, Outcome] = {}
        for key in body.get("accepted") or []:
            found.setdefault(str(key), Accepted(str(key), "accepted"))
        for error in body.get("errors") or []:
            key = str(error.get("key"))
            found.setdefault(
                key,
                Rejected(
                    key, str(error.get("code") or "rejected"), str(error.get("message") or "rejected by the platform")
                ),
            )
        return [found.get(k) or Retryable(k, "missing_result", "the reply omits this item") for k in keys]

    def interpret_holdings(self, kind: Kind, reply: Reply, page: str | None = None) -> HoldingsPage:
        body = replies.json_body(reply)
        if reply.status != 200 or not isinstance(body, dict):
            raise ReplyError("holdings_failed", f"holdings query failed: HTTP {reply.status}")
        holdings = [fields.json_holding(i, kind, "fields") for i in body.get("items") or []]
        cursor = body.get("next_cursor")
        return HoldingsPage(holdings, str(cursor) if cursor else None)


def _post(path: str, chunk: Sequence[Item], bodies: Sequence[bytes]) -> Exchange:
    body = b"[" + b",".join(bodies) + b"]"
    request = Request("POST", path, {"Content-Type": "application/json"}, body)
    return Exchange(request, tuple(i.key for i in chunk))
