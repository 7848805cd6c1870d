"""municipal: 信用怀化 (PROTOCOLS.md "municipal"): JSON over OAuth2 client credentials; results in the reply.

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
from schemas.enums import Kind

TOKEN_PATH = "/oauth/token"


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
        exchanges = []
        for start in range(0, len(items), self.max_items):
            chunk = items[start : start + self.max_items]
            body = orjson.dumps([self.item(i) for i in chunk])
            request = Request("POST", "/api/records", {"Content-Type": "application/json"}, body)
            exchanges.append(Exchange(request, tuple(i.key for i in chunk)))
        return Plan(exchanges)

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
        return Exchange(Request("GET", f"/api/records?{urlencode(query)}"), ())

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
