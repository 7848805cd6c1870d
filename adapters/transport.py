"""The thin transport: one injected ``httpx.Client`` sends an adapter's ``Request`` and returns a ``Reply``.

It owns nothing but the wire: explicit timeouts and limits come with the client, bodies are streamed with a size
cap (a 50 MB reply is cut off, not buffered), replies are stamped with the injected clock's time, and httpx's
exceptions become ``TransportError`` with a stable code. Whether a reply is good news is the adapter's call.

httpx's timeouts bound each socket operation, not the exchange: a target that sends its headers and then one byte
every two seconds never trips a 5 s read timeout. So every exchange also has a deadline (connect, send, headers and
body together): the client sends through ``adapters.wire.WireTransport``, which gives each connect, read and write
at most the time left before the deadline of the exchange running in that thread. The same transport can
``cancel`` everything: it shuts every open socket (a blocked read returns at once) and refuses new connections,
which is how a stopping process ends exchanges a target keeps hanging.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import weakref
from collections.abc import Callable

import httpx

from adapters.base import Reply, Request
from adapters.replies import MAX_REPLY_BYTES
from adapters.wire import Deadlines, TooLarge, WireTransport

DEADLINE_FACTOR = 3  # without a configured deadline: three times the per-operation timeout
NOT_SENT_CODE = "not_sent"  # the request never went out: nothing was asked of the target


class TransportError(Exception):
    """The request did not get a complete reply (timeout, refused connection, reset, oversized body, cancelled).

    ``retry_after`` carries a target's Retry-After when the failure came with one (a throttled token endpoint).
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def make_client(*, timeout_seconds: float, connections: int = 4) -> httpx.Client:
    """A client with explicit timeouts and limits, as every target gets (one per target: no shared pool), on the
    deadline-bounded, cancellable ``WireTransport``."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    wire = WireTransport(limits)
    client = httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
        limits=limits,
        transport=wire,
        follow_redirects=False,
        trust_env=False,
    )
    _WIRES[client] = wire
    return client


_WIRES: weakref.WeakKeyDictionary[httpx.Client, WireTransport] = weakref.WeakKeyDictionary()


class Transport:
    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        now: Callable[[], dt.datetime],
        max_reply_bytes: int = MAX_REPLY_BYTES,
        deadline_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.now = now
        self.max_reply_bytes = max_reply_bytes
        read = client.timeout.read
        self.deadline_seconds = deadline_seconds or DEADLINE_FACTOR * (read if read is not None else 10.0)
        self.wire = _WIRES.get(client)  # None for a client made elsewhere (a test's mock transport)
        self.deadlines = self.wire.deadlines if self.wire is not None else Deadlines()
        self.stopping = self.wire.cancelled if self.wire is not None else threading.Event()  # set by cancel()
        if self.wire is not None:  # worked out once: the wire bounds each of them by the deadline itself
            self._origin, self._prefix = self.wire.origin(self.base_url)
            self._wire_timeouts = client.timeout.as_dict()

    def exchange(self) -> contextlib.AbstractContextManager[None]:
        """One deadline over everything sent inside (a token fetch, the request, its retry on 401)."""
        return self.deadlines.within(self.deadline_seconds)

    def cancel(self) -> None:
        """End exchanges under way now and refuse new ones (the process is stopping)."""
        if self.wire is not None:
            self.wire.cancel()
        self.stopping.set()

    @property
    def cancelled(self) -> bool:
        return self.stopping.is_set()

    def send(self, request: Request) -> Reply:
        if self.stopping.is_set():  # the wire refuses too; a client made elsewhere would still send
            raise TransportError(NOT_SENT_CODE, "not sent: the gateway stopped")
        with self.exchange():
            try:
                return self._send(request)
            except httpx.TimeoutException as exc:
                raise self._failure("timeout", f"{type(exc).__name__}: no reply within the timeout") from None
            except httpx.TransportError as exc:
                raise self._failure("connection", f"{type(exc).__name__}: {exc}") from None

    def _send(self, request: Request) -> Reply:
        if self.wire is not None:
            return self._send_on_wire(self.wire, request)
        with self.client.stream(
            request.method,
            self.base_url + request.path,
            headers=dict(request.headers),
            content=request.body or None,
            timeout=self._timeouts(),
        ) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.max_reply_bytes:
                    raise TransportError(
                        "reply_too_large", f"reply exceeds {self.max_reply_bytes} bytes; cut off unread"
                    )
                if self.deadlines.passed():  # only bites without our wire: with it, the read itself fails
                    raise httpx.ReadTimeout("the exchange deadline has passed")
            return Reply(response.status_code, dict(response.headers), bytes(body), self.now())

    def _send_on_wire(self, wire: WireTransport, request: Request) -> Reply:
        """The same exchange without httpx's request and response objects (``WireTransport.fetch``)."""
        try:
            answer = wire.fetch(
                self._origin,
                request.method,
                self._prefix + request.path,
                request.headers,
                request.body,
                self._wire_timeouts,
                self.max_reply_bytes,
            )
        except TooLarge as exc:
            raise TransportError("reply_too_large", str(exc)) from None
        except httpx.DecodingError as exc:
            raise TransportError("connection", f"DecodingError: {exc}") from None
        return Reply(answer.status, answer.headers, answer.body, self.now())

    def _timeouts(self) -> httpx.Timeout:
        """The client's timeouts, none longer than what is left of the deadline (the wait for a pooled one too)."""
        left = self.deadlines.left()
        configured = self.client.timeout

        def bound(value: float | None) -> float | None:
            if left == math.inf:
                return value
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=bound(configured.connect),
            read=bound(configured.read),
            write=bound(configured.write),
            pool=bound(configured.pool),
        )

    def _failure(self, code: str, message: str) -> TransportError:
        if self.cancelled:
            return TransportError("cancelled", "the gateway stopped while the exchange was under way")
        if self.deadlines.passed():
            return TransportError(
                "timeout", f"the exchange took longer than its deadline of {self.deadline_seconds:g} s"
            )
        return TransportError(code, message)
