"""provincial: 信用湖南 (PROTOCOLS.md "provincial"): XML messages signed with HMAC-SM3, two-stage feedback.

Every message is validated against the shipped XSD before it is sent; a record that makes the message invalid
is refused on its own (with the schema's words) and the rest go. The MessageId is derived from the item keys, so
a message re-sent after a timeout is recognised by the platform rather than taken twice.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlencode

from lxml import etree

from adapters import fields, replies
from adapters.base import (
    Accepted,
    Exchange,
    Holding,
    HoldingsPage,
    Item,
    Operation,
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
from adapters.signing import provincial_signature
from schemas.calendar import ZONE
from schemas.enums import Kind
from schemas.xsd import CONTRACT as XSD_PATH

MAX_BODY = 5 * 1024 * 1024
PAGE_SIZE = 500
_MESSAGE_NS = uuid.UUID("5f0d7c1e-3b7a-4c55-9d43-431200000000")


@dataclass(frozen=True)
class ProvincialConfig:
    sender: str
    sm3_key: str
    receiver: str = "430000-XYPT"
    area: str = "431200"
    max_items: int = 500


_SCHEMA_LOCK = threading.Lock()


@cache
def schema() -> etree.XMLSchema:
    """The shipped XSD, compiled once. Compiling it while other threads build documents failed intermittently
    inside libxml2 (seen with three pushes starting together), so the first compilation holds a lock."""
    with _SCHEMA_LOCK:
        return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def message_id(keys: Sequence[str]) -> str:
    return str(uuid.uuid5(_MESSAGE_NS, "\n".join(keys)))


class Provincial:
    name = "provincial"
    two_stage = True

    def __init__(self, config: ProvincialConfig) -> None:
        self.config = config
        self.max_items = min(config.max_items, 500)

    # -- requests ------------------------------------------------------------------------------------------

    def expected_fields(self, item: Item) -> dict[str, str]:
        return fields.item_codes(item, area=self.config.area)

    def record(self, item: Item) -> etree._Element:
        element = etree.Element(
            "Record", op=item.operation.value, key=item.key, recordId=item.record_id, type=fields.TYPE_CODES[item.kind]
        )
        if item.operation is Operation.UPSERT:
            for code, value in self.expected_fields(item).items():
                etree.SubElement(element, code).text = value
        elif item.reason:
            element.set("reason", fields.reason_text(item.reason) or "其他")
        return element

    def message(
        self, records: Sequence[etree._Element], keys: Sequence[str], now: dt.datetime, *, sign: bool = True
    ) -> etree._Element:
        root = etree.Element("ExchangeMessage", version="1.0")
        header = etree.SubElement(root, "Header")
        etree.SubElement(header, "MessageId").text = message_id(keys)
        etree.SubElement(header, "Sender").text = self.config.sender
        etree.SubElement(header, "Receiver").text = self.config.receiver
        etree.SubElement(header, "Timestamp").text = now.astimezone(ZONE).isoformat(timespec="seconds")
        signature = etree.SubElement(header, "Signature", algorithm="HMAC-SM3")
        body = etree.SubElement(root, "Body")
        body.extend(records)
        signature.text = provincial_signature(self.config.sm3_key, body) if sign else "0" * 64
        return root

    def plan(self, items: Sequence[Item], *, now: dt.datetime) -> Plan:
        refused: list[Rejected] = []
        exchanges: list[Exchange] = []
        for start in range(0, len(items), self.max_items):
            chunk = list(items[start : start + self.max_items])
            document = self.message([self.record(i) for i in chunk], [i.key for i in chunk], now, sign=False)
            if not schema().validate(document):  # rare: find the records that break the schema, send the rest
                bad = {i.key: problem for i in chunk if (problem := self._problem(i, now))}
                refused += [
                    Rejected(k, "xsd_invalid", f"the record breaks provincial-exchange.xsd: {p}")
                    for k, p in bad.items()
                ]
                chunk = [i for i in chunk if i.key not in bad]
                if not chunk:
                    continue
                document = self.message([self.record(i) for i in chunk], [i.key for i in chunk], now, sign=False)
            exchanges += self._messages(document, tuple(i.key for i in chunk), chunk, now)
        return Plan(exchanges, refused)

    def _problem(self, item: Item, now: dt.datetime) -> str | None:
        if schema().validate(self.message([self.record(item)], [item.key], now, sign=False)):
            return None
        error = schema().error_log.last_error  # type: ignore[attr-defined]  # lxml-stubs lack it; lxml has it
        return str(error.message) if error else "invalid"

    def _messages(
        self, document: etree._Element, keys: tuple[str, ...], chunk: Sequence[Item], now: dt.datetime
    ) -> list[Exchange]:
        """Sign the validated document and serialise it; halve it while it is over the 5 MB cap."""
        body_element = document.find("Body")
        assert body_element is not None
        document.find("Header/Signature").text = provincial_signature(self.config.sm3_key, body_element)  # type: ignore[union-attr]
        body = etree.tostring(document, xml_declaration=True, encoding="UTF-8")
        if len(body) > MAX_BODY and len(chunk) > 1:
            half = len(chunk) // 2
            parts = (chunk[:half], chunk[half:])
            return [
                e
                for part in parts
                for e in self._messages(
                    self.message([self.record(i) for i in part], [i.key for i in part], now, sign=False),
                    tuple(i.key for i in part),
                    part,
                    now,
                )
            ]
        headers = {"Content-Type": "application/xml; charset=UTF-8"}
        return [Exchange(Request("POST", "/exchange/submit", headers, body), keys)]

    def results_exchange(self, receipt: str, *, now: dt.datetime) -> Exchange:
        return Exchange(Request("GET", f"/exchange/feedback?{urlencode({'messageId': receipt})}"), ())

    def holdings_exchange(self, kind: Kind, page: str | None, *, now: dt.datetime) -> Exchange:
        query = urlencode({"type": fields.TYPE_CODES[kind], "page": page or "1", "size": PAGE_SIZE})
        return Exchange(Request("GET", f"/exchange/holdings?{query}"), ())

    # -- replies -------------------------------------------------------------------------------------------

    def interpret(self, exchange: Exchange, reply: Reply) -> list[Outcome]:
        keys = exchange.keys
        transient = replies.transient_http(keys, reply)
        if transient is not None:
            return transient
        try:
            root = replies.xml_body(reply)
        except ReplyError as exc:
            return replies.unreadable(keys, exc)
        if reply.status == 200 and root.tag == "Receipt" and root.findtext("Status") == "RECEIVED":
            receipt = root.findtext("MessageId") or ""
            if not receipt:
                return replies.unreadable(keys, ReplyError("malformed_reply", "receipt without MessageId"))
            return [Received(k, receipt) for k in keys]
        if root.tag == "Error":
            code, message = root.findtext("Code") or str(reply.status), root.findtext("Message") or ""
            if code == "E101":  # signature: our key or canonicalisation, not the records' fault
                return [Retryable(k, code, f"signature refused: {message}") for k in keys]
            return [Rejected(k, code, message or f"HTTP {reply.status}") for k in keys]
        return replies.unreadable(keys, ReplyError("malformed_reply", f"unexpected <{root.tag}> (HTTP {reply.status})"))

    def interpret_results(self, exchange: Exchange, reply: Reply, keys: Sequence[str] = ()) -> list[Outcome] | None:
        try:
            root = replies.xml_body(reply)
        except ReplyError as exc:
            return replies.transient_http(keys, reply) or replies.unreadable(keys, exc)
        if reply.status != 200 or root.tag != "Feedback":
            return replies.transient_http(keys, reply) or [
                Retryable(k, str(reply.status), f"feedback query failed: <{root.tag}>") for k in keys
            ]
        if root.get("status") != "DONE":
            return None
        found: dict[str, Outcome] = {}
        for entry in root.iter("Item"):
            key = entry.get("key")
            if key is None or key in found:
                continue
            if entry.get("result") == "ACCEPTED":
                found[key] = Accepted(key, root.get("messageId") or "accepted")
            else:
                found[key] = Rejected(key, entry.get("code") or "REJECTED", entry.get("message") or "rejected")
        wanted = list(keys) or list(found)
        return [found.get(k) or Retryable(k, "missing_result", "the feedback omits this item") for k in wanted]

    def interpret_holdings(self, kind: Kind, reply: Reply, page: str | None = None) -> HoldingsPage:
        root = replies.xml_body(reply)
        if reply.status != 200 or root.tag != "Holdings":
            raise ReplyError("holdings_failed", f"holdings query failed: HTTP {reply.status} <{root.tag}>")
        total = int(root.get("total") or 0)
        holdings = [
            Holding(
                r.get("recordId") or "",
                r.get("key") or "",
                fields.KIND_OF_TYPE.get(r.get("type") or "", kind),
                r.get("status") == "PUBLIC",
                {child.tag: child.text or "" for child in r},
                r.get("updated"),
            )
            for r in root.iter("Record")
        ]
        return HoldingsPage(holdings, next_page(page, PAGE_SIZE, total, len(holdings)), total)
