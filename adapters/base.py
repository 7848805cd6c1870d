"""The one small interface every target adapter implements, and the values that cross it.

An adapter is pure: ``plan`` turns items (record versions or withdrawals) into ``Exchange``s (HTTP requests with
the item keys each covers), ``interpret`` turns a reply into one ``Outcome`` per item. Two-stage platforms add
``results_exchange``/``interpret_results`` (business results for a receipt); every adapter can list its holdings
page by page for reconciliation. Nothing here does I/O: ``adapters.transport`` sends the exchanges, so a file or
前置库 channel could replace HTTP without touching a mapping.

Outcomes, per item:

    Accepted     the platform accepted it (business result); ``receipt`` is its reference
    Received     two-stage platforms: transport receipt only; the business result comes later (``receipt``)
    Rejected     permanent: the platform refused the content (its code and message); do not retry
    Retryable    transient: timeout, 5xx, 429, malformed reply; ``retry_after`` seconds when the platform said
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from schemas.enums import Kind


class Operation(enum.StrEnum):
    UPSERT = "upsert"
    WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to deliver: a record version to publish, or a record to withdraw."""

    key: str  # idempotency key: the same on every attempt (PROTOCOLS.md "item key")
    record_id: str  # stable across versions: the platform keeps the latest version per record id
    kind: Kind
    operation: Operation
    version: int
    content: Mapping[str, Any]  # canonical content of the version (for a withdrawal: the last version sent)
    reason: str | None = None  # withdrawals: revoked, credit_repair, period_ended, other


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # relative to the target's base URL, query string included
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Exchange:
    """A request and the items whose fate its reply decides."""

    request: Request
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    received_at: dt.datetime | None = None  # stamped by the transport from the injected clock


@dataclass(frozen=True, slots=True)
class Accepted:
    key: str
    receipt: str


@dataclass(frozen=True, slots=True)
class Received:
    key: str
    receipt: str


@dataclass(frozen=True, slots=True)
class Rejected:
    key: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Retryable:
    key: str
    code: str
    message: str
    retry_after: float | None = None


Outcome = Accepted | Received | Rejected | Retryable


@dataclass(frozen=True, slots=True)
class Holding:
    """One record as the platform holds it (for reconciliation)."""

    record_id: str
    key: str
    kind: Kind
    public: bool
    fields: Mapping[str, str]
    updated_at: str | None


@dataclass(frozen=True, slots=True)
class HoldingsPage:
    holdings: Sequence[Holding]
    next_page: str | None  # an opaque cursor for ``holdings_exchange``; None on the last page
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``plan`` decided: exchanges to send, and items refused before sending (with the reason)."""

    exchanges: list[Exchange]
    refused: list[Rejected] = field(default_factory=list)


def next_page(page: str | None, size: int, total: int, got: int) -> str | None:
    """The page after ``page`` (numbered from 1) if the platform holds more than what was listed so far."""
    number = int(page or 1)
    return str(number + 1) if got and number * size < total else None


def fields_digest(mapping: Mapping[str, Any]) -> str:
    """A content hash of a holding's fields, independent of their order: what reconciliation compares."""
    return hashlib.sha256(orjson.dumps(dict(mapping), option=orjson.OPT_SORT_KEYS)).hexdigest()


class Adapter(Protocol):
    """A target platform's protocol as pure functions (PROTOCOLS.md)."""

    name: str
    two_stage: bool
    max_items: int  # per exchange

    def plan(self, items: Sequence[Item], *, now: dt.datetime) -> Plan:
        """Requests that deliver ``items``; signed where the protocol signs bodies."""
        ...

    def interpret(self, exchange: Exchange, reply: Reply) -> list[Outcome]:
        """One outcome per key of ``exchange``."""
        ...

    def holdings_exchange(self, kind: Kind, page: str | None, *, now: dt.datetime) -> Exchange: ...

    def expected_fields(self, item: Item) -> dict[str, str]:
        """The fields the platform lists for ``item`` once it holds it (compared by ``fields_digest``)."""
        ...

    def interpret_holdings(self, kind: Kind, reply: Reply, page: str | None = None) -> HoldingsPage:
        """One page of holdings; ``page`` is the cursor this page was asked with (None: the first)."""
        ...


@runtime_checkable
class TwoStageAdapter(Adapter, Protocol):
    def results_exchange(self, receipt: str, *, now: dt.datetime) -> Exchange: ...

    def interpret_results(self, exchange: Exchange, reply: Reply, keys: Sequence[str] = ()) -> list[Outcome] | None:
        """Business results for ``keys`` (the items sent with the receipt), or None while still processing."""
        ...


class ReplyError(Exception):
    """A reply that cannot be understood: malformed, hostile, or not what the protocol promises. Retryable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
