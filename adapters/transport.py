"""The thin transport: one injected ``httpx.Client`` sends an adapter's ``Request`` and returns a ``Reply``.

It owns nothing but the wire: explicit timeouts and limits come with the client, bodies are streamed with a size
cap (a 50 MB reply is cut off, not buffered), replies are stamped with the injected clock's time, and httpx's
exceptions become ``TransportError`` with a stable code. Whether a reply is good news is the adapter's call.

httpx's timeouts bound each socket operation, not the exchange: a target that sends its headers and then one byte
every two seconds never trips a 5 s read timeout. So every exchange also has a deadline (connect, send, headers and
body together): the client's sockets go through ``DeadlineBackend``, which gives each connect, read and write at
most the time left before the deadline of the exchange running in that thread. The same backend can ``cancel``
everything: it shuts every open socket (a blocked read returns at once) and refuses new connections, which is
how a stopping process ends exchanges a target keeps hanging.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator

import httpcore
import httpx

from adapters.base import Reply, Request
from adapters.replies import MAX_REPLY_BYTES

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
DEADLINE_FACTOR = 3  # without a configured deadline: three times the per-operation timeout


class TransportError(Exception):
    """The request did not get a complete reply (timeout, refused connection, reset, oversized body, cancelled).

    ``retry_after`` carries a target's Retry-After when the failure came with one (a throttled token endpoint).
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Deadlines(threading.local):
    """The monotonic time by which the exchange running in this thread must be over (None: no deadline)."""

    at: float | None = None

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        """Bound everything this thread sends and reads inside the block; a nested block keeps the earlier one."""
        outer = self.at
        at = time.monotonic() + seconds
        self.at = at if outer is None else min(outer, at)
        try:
            yield
        finally:
            self.at = outer

    def left(self) -> float:
        return math.inf if self.at is None else max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, with every blocking socket call cut short at the exchange's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self.deadlines = Deadlines()
        self._open: weakref.WeakSet[_DeadlineStream] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.cancelled = threading.Event()

    def remaining(self, timeout: float | None) -> float | None:
        """The socket timeout to use now: the smaller of ``timeout`` and what is left before the deadline."""
        if self.cancelled.is_set():
            raise OSError("the exchange was cancelled: the gateway is stopping")
        if self.deadlines.at is None:
            return timeout
        if self.deadlines.passed():
            raise TimeoutError("the exchange deadline has passed")
        left = self.deadlines.left()
        return left if timeout is None else min(timeout, left)

    def cancel(self) -> None:
        """Shut every open connection and refuse new ones: exchanges under way end at once with an error."""
        self.cancelled.set()
        with self._lock:
            streams = list(self._open)
        for stream in streams:
            stream.shutdown()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        with httpcore_errors(httpcore.ConnectTimeout, httpcore.ConnectError):
            limit = self.remaining(timeout)
        inner = self._inner.connect_tcp(host, port, limit, local_address, socket_options)
        return self._track(inner)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        with httpcore_errors(httpcore.ConnectTimeout, httpcore.ConnectError):
            limit = self.remaining(timeout)
        return self._track(self._inner.connect_unix_socket(path, limit, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def _track(self, inner: httpcore.NetworkStream) -> _DeadlineStream:
        stream = _DeadlineStream(self, inner)
        with self._lock:
            self._open.add(stream)
        if self.cancelled.is_set():  # cancelled while connecting: do not let this one slip through
            stream.shutdown()
        return stream

    def _forget(self, stream: _DeadlineStream) -> None:
        with self._lock:
            self._open.discard(stream)


@contextlib.contextmanager
def httpcore_errors(timeout: type[Exception], other: type[Exception]) -> Iterator[None]:
    """Our own refusals (deadline passed, cancelled) as the httpcore errors httpx knows how to translate."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc)) from None
    except OSError as exc:
        raise other(str(exc)) from None


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, backend: DeadlineBackend, inner: httpcore.NetworkStream) -> None:
        self._backend = backend
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with httpcore_errors(httpcore.ReadTimeout, httpcore.ReadError):
            limit = self._backend.remaining(timeout)
        return self._inner.read(max_bytes, limit)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        with httpcore_errors(httpcore.WriteTimeout, httpcore.WriteError):
            limit = self._backend.remaining(timeout)
        self._inner.write(buffer, limit)

    def close(self) -> None:
        self._backend._forget(self)
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        with httpcore_errors(httpcore.ConnectTimeout, httpcore.ConnectError):
            limit = self._backend.remaining(timeout)
        upgraded = self._inner.start_tls(ssl_context, server_hostname, limit)
        self._backend._forget(self)
        return self._backend._track(upgraded)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        """Wake a read blocked in another thread (it returns end-of-stream); the owner closes the stream."""
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class DeadlineHTTPTransport(httpx.HTTPTransport):
    """httpx's own transport with its connection pool on a ``DeadlineBackend`` (httpx takes no backend itself)."""

    def __init__(self, backend: DeadlineBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self.backend = backend
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


_BACKENDS: weakref.WeakKeyDictionary[httpx.Client, DeadlineBackend] = weakref.WeakKeyDictionary()


def make_client(*, timeout_seconds: float, connections: int = 4) -> httpx.Client:
    """A client with explicit timeouts and limits, as every target gets (one per target: no shared pool)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    backend = DeadlineBackend()
    client = httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0)),
        limits=limits,
        transport=DeadlineHTTPTransport(backend, limits),
        follow_redirects=False,
        trust_env=False,
    )
    _BACKENDS[client] = backend
    return client


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
        self.backend = _BACKENDS.get(client)  # None for a client made elsewhere (a test's mock transport)
        self.deadlines = self.backend.deadlines if self.backend is not None else Deadlines()

    def exchange(self) -> contextlib.AbstractContextManager[None]:
        """One deadline over everything sent inside (a token fetch, the request, its retry on 401)."""
        return self.deadlines.within(self.deadline_seconds)

    def cancel(self) -> None:
        """End exchanges under way now and refuse new ones (the process is stopping)."""
        if self.backend is not None:
            self.backend.cancel()

    @property
    def cancelled(self) -> bool:
        return self.backend is not None and self.backend.cancelled.is_set()

    def send(self, request: Request) -> Reply:
        with self.exchange():
            try:
                return self._send(request)
            except httpx.TimeoutException as exc:
                raise self._failure("timeout", f"{type(exc).__name__}: no reply within the timeout") from None
            except httpx.TransportError as exc:
                raise self._failure("connection", f"{type(exc).__name__}: {exc}") from None

    def _send(self, request: Request) -> Reply:
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
                if self.deadlines.passed():  # only bites without our backend: with it, the read itself fails
                    raise httpx.ReadTimeout("the exchange deadline has passed")
            return Reply(response.status_code, dict(response.headers), bytes(body), self.now())

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
