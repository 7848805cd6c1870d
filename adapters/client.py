"""A target as the delivery engine uses it: an adapter, its authentication and the transport, wired together.

This is the only place an adapter's pure plans meet the network. Transport failures (timeouts, refused
connections, oversized replies, an exchange past its deadline, a token endpoint that says no or asks us to wait)
become ``Retryable`` outcomes for the items concerned, with the target's Retry-After when it gave one; nothing
here raises for a bad reply.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from adapters.auth import Auth
from adapters.base import Adapter, Exchange, Holding, Item, Outcome, Reply, ReplyError, Retryable, TwoStageAdapter
from adapters.transport import Transport, TransportError
from schemas.enums import Kind

_STALLED = {"timeout", "cancelled"}  # the target hangs, or we are stopping: send no more of this batch
NOT_SENT = "not sent: an earlier request of the same batch timed out or was cancelled"


class TargetClient:
    def __init__(
        self, adapter: Adapter, transport: Transport, auth: Auth, now: Callable[[], dt.datetime], concurrency: int = 4
    ) -> None:
        self.adapter = adapter
        self.transport = transport
        self.auth = auth
        self.now = now
        self.concurrency = concurrency

    @property
    def name(self) -> str:
        return str(self.adapter.name)

    @property
    def two_stage(self) -> bool:
        return bool(self.adapter.two_stage)

    def close(self) -> None:
        self.transport.client.close()

    def cancel(self) -> None:
        """End the exchanges under way with this target now (the process is stopping): they become retryable."""
        self.transport.cancel()

    def send(self, exchange: Exchange) -> Reply:
        """One exchange under one deadline: a token fetch, the request and its retry on 401 together."""
        with self.transport.exchange():
            reply = self.transport.send(self.auth.apply(exchange.request, self.now()))
            if self.auth.should_retry(reply):  # e.g. an OAuth2 token that died early: once more with a new one
                reply = self.transport.send(self.auth.apply(exchange.request, self.now()))
        return reply

    def deliver(self, items: Sequence[Item]) -> list[Outcome]:
        """Send ``items``; one outcome per item (``Received`` for two-stage platforms until results arrive).

        Several exchanges (the portal's one request per notice) go ``concurrency`` at a time, within the
        transport's connection limit; order between them does not matter, each is a different record. Once one
        of them times out, is cut off or is cancelled, the rest of the batch is not sent (they stay retryable):
        a hanging target costs a batch one deadline, not one per notice.
        """
        plan = self.adapter.plan(items, now=self.now())
        outcomes: list[Outcome] = list(plan.refused)
        stalled = threading.Event()

        def exchange(ex: Exchange) -> list[Outcome]:
            if stalled.is_set():
                return [Retryable(k, "not_sent", NOT_SENT) for k in ex.keys]
            found = self._exchange(ex)
            if any(isinstance(o, Retryable) and o.code in _STALLED for o in found):
                stalled.set()
            return found

        if len(plan.exchanges) > 1 and self.concurrency > 1:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"{self.name}-send") as pool:
                for found in pool.map(exchange, plan.exchanges):
                    outcomes += found
        else:
            for ex in plan.exchanges:
                outcomes += exchange(ex)
        return outcomes

    def _exchange(self, exchange: Exchange) -> list[Outcome]:
        try:
            reply = self.send(exchange)
        except TransportError as exc:
            return [Retryable(k, exc.code, exc.message, exc.retry_after) for k in exchange.keys]
        result: list[Outcome] = self.adapter.interpret(exchange, reply)
        return result

    def results(self, receipt: str, keys: Sequence[str]) -> list[Outcome] | None:
        """Business results of a two-stage receipt for ``keys``; None while the platform is still processing."""
        adapter = self.adapter
        if not isinstance(adapter, TwoStageAdapter):
            raise TypeError(f"{self.name} answers at once: it has no business results to ask for")
        exchange = adapter.results_exchange(receipt, now=self.now())
        try:
            reply = self.send(exchange)
        except TransportError as exc:
            return [Retryable(k, exc.code, exc.message, exc.retry_after) for k in keys]
        result: list[Outcome] | None = adapter.interpret_results(exchange, reply, keys)
        return result

    def holdings(self, kind: Kind) -> Iterator[Holding]:
        """Everything the platform holds of ``kind``, page by page. Raises ``ReplyError`` if a page fails."""
        page: str | None = None
        while True:
            exchange = self.adapter.holdings_exchange(kind, page, now=self.now())
            try:
                reply = self.send(exchange)
            except TransportError as exc:
                raise ReplyError(exc.code, exc.message) from None
            found = self.adapter.interpret_holdings(kind, reply, page)
            yield from found.holdings
            if found.next_page is None:
                return
            page = found.next_page
