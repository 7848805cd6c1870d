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
from adapters.base import (
    Adapter,
    Exchange,
    Holding,
    Item,
    Outcome,
    Reply,
    ReplyError,
    Request,
    Retryable,
    TwoStageAdapter,
)
from adapters.excerpts import Excerpt, failed, reply_excerpt, request_excerpt
from adapters.pace import Pace
from adapters.transport import NOT_SENT_CODE, Transport, TransportError
from schemas.enums import Kind

_STALLED = {"timeout", "cancelled"}  # the target hangs, or we are stopping: send no more of this batch
NOT_SENT = "not sent: an earlier request of the same batch timed out or was cancelled"
STOPPED = "not sent: the gateway began to stop while this request waited for its turn under the rate limit"


class TargetClient:
    def __init__(
        self,
        adapter: Adapter,
        transport: Transport,
        auth: Auth,
        now: Callable[[], dt.datetime],
        concurrency: int = 4,
        pace: Pace | None = None,
    ) -> None:
        self.adapter = adapter
        self.transport = transport
        self.auth = auth
        self.now = now
        self.concurrency = concurrency
        self.pace = pace  # the target's rate limit (None: as fast as it answers)
        self._halted = threading.Event()  # halt() or cancel(): requests waiting for their turn are not sent
        self._senders: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def name(self) -> str:
        return str(self.adapter.name)

    @property
    def two_stage(self) -> bool:
        return bool(self.adapter.two_stage)

    def close(self) -> None:
        with self._pool_lock:
            senders, self._senders = self._senders, None
        if senders is not None:
            senders.shutdown(wait=True)
        self.transport.client.close()

    def halt(self) -> None:
        """Send nothing new that waits for a turn under the rate limit (the process is stopping): those requests
        end at once as ``not_sent``, while exchanges already under way go on."""
        self._halted.set()

    @property
    def halted(self) -> bool:
        return self._halted.is_set()

    def cancel(self) -> None:
        """End the exchanges under way with this target now (the process is stopping): they become retryable."""
        self._halted.set()
        self.transport.cancel()

    def send(self, exchange: Exchange) -> Reply:
        """One exchange under one deadline: a token fetch, the request and its retry on 401 together."""
        return self._send(exchange)[1]

    def _send(self, exchange: Exchange, stalled: threading.Event | None = None) -> tuple[Request, Reply]:
        """The request as sent (authentication applied) and its reply, once the rate limit gives it its turn (the
        wait is not part of the exchange's deadline). Raises ``TransportError`` ``not_sent`` when, by its turn, the
        process is stopping or its batch has ``stalled``: nothing went out, so nothing was asked of the target."""
        if self.pace is not None:
            if not self.pace.wait(self._halted):
                raise TransportError(NOT_SENT_CODE, STOPPED)
            if stalled is not None and stalled.is_set():
                raise TransportError(NOT_SENT_CODE, NOT_SENT)
        with self.transport.exchange():
            sent = self.auth.apply(exchange.request, self.now())
            reply = self.transport.send(sent)
            if self.auth.should_retry(reply):  # e.g. an OAuth2 token that died early: once more with a new one
                sent = self.auth.apply(exchange.request, self.now())
                reply = self.transport.send(sent)
        return sent, reply

    def deliver(self, items: Sequence[Item]) -> list[Outcome]:
        return self.deliver_traced(items)[0]

    def deliver_traced(self, items: Sequence[Item]) -> tuple[list[Outcome], dict[str, Excerpt]]:
        """Send ``items``; one outcome per item (``Received`` for two-stage platforms until results arrive), and
        for each item that was sent an excerpt of its exchange (``adapters.excerpts``: secrets out, IDs masked).

        Several exchanges (the portal's one request per notice) go ``concurrency`` at a time, within the
        transport's connection limit; order between them does not matter, each is a different record. Once one
        of them times out, is cut off or is cancelled, the rest of the batch is not sent (they stay retryable):
        a hanging target costs a batch one deadline, not one per notice.
        """
        plan = self.adapter.plan(items, now=self.now())
        outcomes: list[Outcome] = list(plan.refused)
        excerpts: dict[str, Excerpt] = {}
        stalled = threading.Event()
        exchanges = plan.exchanges
        answers: list[tuple[list[Outcome], Excerpt | None] | None] = [None] * len(exchanges)
        turns = iter(range(len(exchanges)))
        taking = threading.Lock()

        def run() -> None:
            """Send exchanges until none is left: a few of these share the batch, one Future each, rather than a
            Future and two thread wake-ups per notice (a tenth of a portal lane's interpreter time)."""
            while True:
                with taking:
                    at = next(turns, None)
                if at is None:
                    return
                ex = exchanges[at]
                if stalled.is_set():
                    answers[at] = [Retryable(k, NOT_SENT_CODE, NOT_SENT) for k in ex.keys], None
                    continue
                found, excerpt = self._exchange(ex, stalled)
                if any(isinstance(o, Retryable) and o.code in _STALLED for o in found):
                    stalled.set()
                answers[at] = found, excerpt

        runners = min(self.concurrency, len(exchanges))
        if runners > 1:
            for task in [self._pool().submit(run) for _ in range(runners)]:
                task.result()
        else:
            run()
        for ex, answer in zip(exchanges, answers, strict=True):
            assert answer is not None  # every turn was taken and answered
            found, excerpt = answer
            outcomes += found
            if excerpt is not None:
                excerpts.update(dict.fromkeys(ex.keys, excerpt))
        return outcomes, excerpts

    def _pool(self) -> ThreadPoolExecutor:
        """The threads that send a batch's exchanges side by side, made once (not once per batch)."""
        with self._pool_lock:
            if self._senders is None:
                self._senders = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"{self.name}-send")
            return self._senders

    def _exchange(self, exchange: Exchange, stalled: threading.Event) -> tuple[list[Outcome], Excerpt]:
        try:
            sent, reply = self._send(exchange, stalled)
        except TransportError as exc:
            excerpt = Excerpt(request_excerpt(exchange.request), failed(exc.code, exc.message))
            return [Retryable(k, exc.code, exc.message, exc.retry_after) for k in exchange.keys], excerpt
        result: list[Outcome] = self.adapter.interpret(exchange, reply)
        return result, Excerpt(request_excerpt(sent), reply_excerpt(reply))

    def results(self, receipt: str, keys: Sequence[str]) -> list[Outcome] | None:
        """Business results of a two-stage receipt for ``keys``; None while the platform is still processing."""
        return self.results_traced(receipt, keys)[0]

    def results_traced(self, receipt: str, keys: Sequence[str]) -> tuple[list[Outcome] | None, Excerpt | None]:
        """``results`` with an excerpt of the exchange that asked for them."""
        adapter = self.adapter
        if not isinstance(adapter, TwoStageAdapter):
            raise TypeError(f"{self.name} answers at once: it has no business results to ask for")
        exchange = adapter.results_exchange(receipt, now=self.now())
        try:
            sent, reply = self._send(exchange)
        except TransportError as exc:
            excerpt = Excerpt(request_excerpt(exchange.request), failed(exc.code, exc.message))
            return [Retryable(k, exc.code, exc.message, exc.retry_after) for k in keys], excerpt
        result: list[Outcome] | None = adapter.interpret_results(exchange, reply, keys)
        return result, Excerpt(request_excerpt(sent), reply_excerpt(reply))

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
