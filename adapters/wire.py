"""An httpx transport on the standard library's sockets and ``http.client`` parser: the same httpx interface
(client, requests, responses, timeouts, limits, exceptions) at a third of the CPU per request.

httpx's own transport (httpcore and h11, both pure Python) cost about 250 µs of CPU per request on this machine;
the portal takes one request per notice, so that was most of a portal lane. Here a request is written with one
``sendall`` and its reply parsed by ``http.client.HTTPResponse`` (status line, headers, chunked or sized body):
about 70 µs. Only what the gateway uses is here: HTTP/1.1, keep-alive connections per host, TLS by the given
context, no proxies, no HTTP/2.

Every socket operation is also bounded by the deadline of the exchange running in its thread (``Deadlines``):
httpx's timeouts bound each read, not the exchange, so a target that sends its headers and then one byte every
two seconds never trips a 5 s read timeout; here each read gets at most what is left. ``cancel`` shuts every
open socket (a blocked read returns at once) and refuses new connections: how a stopping process ends exchanges
a target keeps hanging.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import math
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator

import httpx


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


class _Guarded(io.RawIOBase):
    """The reading side of a connection's socket, each ``recv`` bounded by what is left of the deadline."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        connection = self._connection
        connection.sock.settimeout(connection.transport.remaining(connection.read_timeout))
        return connection.sock.recv_into(buffer)


class _Connection:
    """One keep-alive connection to one origin; used by one exchange at a time."""

    def __init__(self, transport: WireTransport, origin: tuple[str, str, int], sock: socket.socket) -> None:
        self.transport, self.origin, self.sock = transport, origin, sock
        self.read_timeout: float | None = None
        self.idle_since = 0.0

    def makefile(self, mode: str) -> io.BufferedReader:
        """What ``http.client.HTTPResponse`` reads the reply from."""
        return io.BufferedReader(_Guarded(self))

    def send(self, data: bytes, timeout: float | None) -> None:
        self.sock.settimeout(self.transport.remaining(timeout))
        self.sock.sendall(data)

    def dead(self) -> bool:
        """Readable while idle means closed by the other side (or talking out of turn): not to be reused."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.transport._forget(self)
        with contextlib.suppress(OSError):
            self.sock.close()


class _Reply(httpx.SyncByteStream):
    """A reply's body as httpx reads it; the connection goes back to the pool once the body was read to its end."""

    def __init__(self, response: http.client.HTTPResponse, connection: _Connection, done: Callable[[], None]):
        self._response, self._connection, self._done = response, connection, done
        self._closed = self._failed = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        self._failed = True  # until the body was read to its end
        try:
            while chunk := response.read(65536):
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from None
        except (http.client.HTTPException, ValueError) as exc:
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from None
        if response.length:  # http.client ends a sized body that stops short without a word
            raise httpx.RemoteProtocolError(f"the reply ended {response.length} bytes before its Content-Length")
        self._failed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        response, connection = self._response, self._connection
        reusable = response.isclosed() and not response.will_close and not self._failed
        response.close()
        if reusable:
            self._connection.transport._checkin(connection)
        else:
            connection.close()
        self._done()


class _Stale(Exception):
    """A reused connection turned out closed before the request was read."""


class WireTransport(httpx.BaseTransport):
    """``httpx.Client(transport=WireTransport(limits=...))``: at most ``max_connections`` exchanges at once, up to
    ``max_keepalive_connections`` idle connections kept for ``keepalive_expiry`` seconds."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self.deadlines = Deadlines()
        self.cancelled = threading.Event()
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._slots = threading.BoundedSemaphore(limits.max_connections or 100)
        self._keep = limits.max_keepalive_connections if limits.max_keepalive_connections is not None else 100
        self._expiry = limits.keepalive_expiry if limits.keepalive_expiry is not None else math.inf
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()

    # -- the deadline and cancellation -----------------------------------------------------------------------

    def remaining(self, timeout: float | None) -> float | None:
        """The socket timeout to use now: the smaller of ``timeout`` and what is left before the deadline."""
        if self.cancelled.is_set():
            raise ConnectionAbortedError("the exchange was cancelled: the gateway is stopping")
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
            connections = list(self._open)
        for connection in connections:
            connection.shutdown()

    # -- httpx.BaseTransport ---------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        if not self._slots.acquire(timeout=self._wait(timeouts.get("pool"), httpx.PoolTimeout, request)):
            raise httpx.PoolTimeout("no connection came free within the pool timeout", request=request)
        try:
            connection, reused = self._checkout(request, timeouts.get("connect"))
            try:
                response = self._exchange(connection, request, timeouts, stale_is=reused)
            except _Stale:  # the server closed it while idle and we wrote before its FIN arrived: once more
                connection = self._connect(connection.origin, timeouts.get("connect"), request)
                response = self._exchange(connection, request, timeouts, stale_is=False)
        except BaseException:
            self._slots.release()
            raise
        reply = _Reply(response, connection, self._slots.release)
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=reply,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("ascii", "replace")},
        )

    def close(self) -> None:
        with self._lock:
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    # -- connections -----------------------------------------------------------------------------------------

    def _wait(self, timeout: float | None, error: type[httpx.TimeoutException], request: httpx.Request) -> float:
        try:
            limit = self.remaining(timeout)
        except TimeoutError as exc:
            raise error(str(exc), request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return -1 if limit is None else limit

    def _checkout(self, request: httpx.Request, connect_timeout: float | None) -> tuple[_Connection, bool]:
        """A live idle connection to the request's origin, or a new one; and whether it was reused."""
        url = request.url
        scheme = url.scheme
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                return self._connect(origin, connect_timeout, request), False
            if now - connection.idle_since < self._expiry and not connection.dead():
                return connection, True
            connection.close()

    def _connect(self, origin: tuple[str, str, int], timeout: float | None, request: httpx.Request) -> _Connection:
        scheme, host, port = origin
        limit = self._wait(timeout, httpx.ConnectTimeout, request)
        try:
            sock = socket.create_connection((host, port), timeout=None if limit < 0 else limit)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        connection = _Connection(self, origin, sock)
        with self._lock:
            self._open.add(connection)
        if self.cancelled.is_set():  # cancelled while connecting: do not let this one slip through
            connection.close()
            raise httpx.ConnectError("the exchange was cancelled: the gateway is stopping", request=request)
        return connection

    def _exchange(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None], *, stale_is: bool
    ) -> http.client.HTTPResponse:
        """Write the request in one piece and read the reply's status line and headers.

        ``stale_is``: the connection was reused, so a reset or a close before the first byte of the reply means it
        had been closed while idle (``_Stale``), not that the target failed: the request was never read."""
        url = request.url
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1".encode("ascii")]
        head += [name + b": " + value for name, value in request.headers.raw]
        data = b"\r\n".join(head) + b"\r\n\r\n" + request.read()
        try:
            connection.send(data, timeouts.get("write"))
        except ConnectionError:
            connection.close()
            if stale_is and not self.cancelled.is_set():
                raise _Stale() from None
            raise httpx.WriteError("the connection was reset", request=request) from None
        except TimeoutError as exc:
            connection.close()
            raise httpx.WriteTimeout(str(exc) or "write timed out", request=request) from None
        except OSError as exc:
            connection.close()
            raise httpx.WriteError(str(exc), request=request) from None
        connection.read_timeout = timeouts.get("read")
        response = http.client.HTTPResponse(connection, method=request.method)  # type: ignore[arg-type]
        try:
            response.begin()
        except ConnectionResetError:  # http.client.RemoteDisconnected too: closed before the first byte
            connection.close()
            if stale_is and not self.cancelled.is_set():
                raise _Stale() from None
            raise httpx.RemoteProtocolError(
                "the server closed the connection without a reply", request=request
            ) from None
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from None
        except (http.client.HTTPException, ValueError) as exc:
            connection.close()
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request) from None
        except OSError as exc:
            connection.close()
            raise httpx.ReadError(str(exc), request=request) from None
        return response

    def _checkin(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(connection.origin, [])
            if len(idle) < self._keep and not self.cancelled.is_set():
                idle.append(connection)
                return
        connection.close()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)
