"""An httpx transport on the standard library's sockets and httptools' reply parser: the same httpx interface
(client, requests, responses, timeouts, limits, exceptions) at a fraction of the CPU per request, and ``fetch``,
the same exchange without httpx's request and response objects, for the gateway's own transport.

httpx's own transport (httpcore and h11, both pure Python) cost about 250 µs of CPU per request on this machine;
the portal takes one request per notice, so that was most of a portal lane. Here a request is written with one
``sendall`` and its reply parsed by httptools (llhttp, the parser uvicorn serves with): status line, headers,
chunked or sized body. ``http.client``, used before, spent most of its time in ``email.parser`` on the headers.
Only what the gateway uses is here: HTTP/1.1, keep-alive connections per host, TLS by the given context, no
proxies, no HTTP/2.

Every socket operation is also bounded by the deadline of the exchange running in its thread (``Deadlines``):
httpx's timeouts bound each read, not the exchange, so a target that sends its headers and then one byte every
two seconds never trips a 5 s read timeout; here each read gets at most what is left. ``cancel`` shuts every
open socket (a blocked read returns at once) and refuses new connections: how a stopping process ends exchanges
a target keeps hanging.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools
import httpx

Origin = tuple[str, str, int]  # scheme, host, port
USER_AGENT = b"credit-gateway"
_NO_BODY = frozenset((204, 304))
_READ_SIZE = 65536
_BREAKS = frozenset("\r\n\0")


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


class TooLarge(Exception):
    """A reply body longer than the caller's limit: cut off unread (the connection is not reused)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"reply exceeds {limit} bytes; cut off unread")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole reply as ``fetch`` returns it: header names in lower case, repeated headers joined by ", " (as
    ``dict(httpx.Headers)`` gives them), the body decoded from gzip or deflate if the server sent it so."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Stale(Exception):
    """A reused connection turned out closed before the request was read."""


class _Connection:
    """One keep-alive connection to one origin; used by one exchange at a time."""

    def __init__(self, transport: WireTransport, origin: Origin, sock: socket.socket) -> None:
        self.transport, self.origin, self.sock = transport, origin, sock
        self.read_timeout: float | None = None
        self.idle_since = 0.0
        self.buffer = memoryview(bytearray(_READ_SIZE))

    def send(self, data: bytes, timeout: float | None) -> None:
        self.sock.settimeout(self.transport.remaining(timeout))
        self.sock.sendall(data)

    def receive(self) -> memoryview:
        """The next bytes the server sent (empty: it closed), within the read timeout and the deadline."""
        self.sock.settimeout(self.transport.remaining(self.read_timeout))
        return self.buffer[: self.sock.recv_into(self.buffer)]

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


class _Reader:
    """One reply read off a connection: httptools calls back with the head and the body as bytes arrive.

    A body that ends with the connection (neither Content-Length nor chunked) is over when the server closes; one
    that stops short of its Content-Length or its last chunk is a protocol error, and such a connection is never
    reused."""

    def __init__(self, connection: _Connection, method: str) -> None:
        self.connection = connection
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.head_done = self.done = False
        self.heard = False  # any byte of the reply arrived
        self.head_only = method == "HEAD"
        self.until_close = False  # the body's end is the connection's end
        self.keep_alive = False  # the server keeps the connection open after this reply
        self.declared: int | None = None  # Content-Length
        self.received = 0

    # -- httptools' callbacks ----------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an informational reply (103 Early Hints): the real one follows
            self.headers = []
            return
        self.head_done = True
        names = {n.lower(): v for n, v in self.headers}
        if b"content-length" in names:
            with contextlib.suppress(ValueError):
                self.declared = int(names[b"content-length"])
        self.until_close = (
            not self.head_only
            and status not in _NO_BODY
            and b"content-length" not in names
            and b"chunked" not in names.get(b"transfer-encoding", b"").lower()
        )
        if self.head_only:
            self.done = True

    def on_body(self, body: bytes) -> None:
        self.received += len(body)
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.done = self.head_done  # else the end of an informational reply
        self.keep_alive = bool(self.parser.should_keep_alive())  # asked here: llhttp forgets once it returns

    # -- reading -------------------------------------------------------------------------------------------------

    @property
    def status(self) -> int:
        return int(self.parser.get_status_code())

    @property
    def reusable(self) -> bool:
        return self.done and self.keep_alive

    def _more(self) -> bool:
        """Read and parse what arrives next; False when the server closed the connection."""
        try:
            data = self.connection.receive()
            if not data:
                return False
            self.heard = True
            self.parser.feed_data(data)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out") from None
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            if isinstance(exc, ConnectionResetError) and not self.heard:
                raise
            raise httpx.ReadError(str(exc) or type(exc).__name__) from None
        return True

    def head(self) -> None:
        """Read up to the end of the headers. ``ConnectionResetError``: closed before the reply's first byte."""
        while not self.head_done:
            if not self._more():
                if not self.heard:
                    raise ConnectionResetError("the server closed the connection without a reply")
                raise httpx.RemoteProtocolError("the server closed the connection in the middle of the headers")

    def body(self) -> Iterator[bytes]:
        """The body's pieces as they arrive, until the reply ends."""
        while True:
            if self.chunks:
                chunks, self.chunks = self.chunks, []
                yield from chunks
            if self.done:
                return
            if not self._more():
                if self.until_close:  # keep_alive stays False: this connection is over
                    self.done = True
                    continue
                if self.declared is not None:
                    short = self.declared - self.received
                    raise httpx.RemoteProtocolError(f"the reply ended {short} bytes before its Content-Length")
                raise httpx.RemoteProtocolError("the reply ended before its last chunk")

    def text_headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, value in self.headers:
            key, text = _text(name).lower(), _text(value)
            found[key] = f"{found[key]}, {text}" if key in found else text
        return found


def _text(raw: bytes) -> str:
    """A header as httpx decodes one: ASCII, else UTF-8, else Latin-1."""
    if raw.isascii():
        return raw.decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """A gzip or deflate body unpacked, at most ``limit`` bytes of it (a small body may unpack to gigabytes)."""
    if encoding not in ("gzip", "deflate", "x-gzip") or not body:
        return body
    unpack = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, by the header
    try:
        data = unpack.decompress(body, limit + 1)
    except zlib.error as exc:
        raise httpx.DecodingError(f"the {encoding} body does not unpack: {exc}") from None
    if len(data) > limit:
        raise TooLarge(limit)
    return data


class _Reply(httpx.SyncByteStream):
    """A reply's body as httpx reads it; the connection goes back to the pool once the body was read to its end."""

    def __init__(self, reader: _Reader, done: Callable[[], None]):
        self._reader, self._done = reader, done
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self._reader.body()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader.connection.transport._release(self._reader)
        self._done()


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
        self._idle: dict[Origin, list[_Connection]] = {}
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

    # -- the gateway's own way in ----------------------------------------------------------------------------

    @staticmethod
    def origin(url: str) -> tuple[Origin, str]:
        """A base URL's origin and path prefix, worked out once per target rather than once per request."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        return (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)), parts.path.rstrip("/")

    def fetch(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: Mapping[str, float | None],
        max_body: int,
    ) -> Answer:
        """One whole exchange: what ``httpx.Client.request`` does over this transport, without building httpx's
        request and response objects (a third of a portal notice's client CPU). ``target`` is the request target
        (path and query, already percent-encoded). Raises httpx's exceptions as the client would, and
        ``TooLarge`` for a body over ``max_body`` bytes."""
        if not target.isascii() or " " in target:
            target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")
        head = [f"{method} {target} HTTP/1.1\r\nHost: {_host(origin)}\r\n"]
        for name, value in headers.items():
            if _BREAKS.intersection(name) or _BREAKS.intersection(value):
                raise httpx.LocalProtocolError(f"the header {name!r} holds a line break")
            head.append(f"{name}: {value}\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}\r\n")
        head.append("Accept: */*\r\nUser-Agent: credit-gateway\r\n\r\n")
        data = "".join(head).encode() + body
        reader = self._open_exchange(origin, method, data, timeouts)
        released = False
        try:
            content = bytearray()
            for chunk in reader.body():
                content += chunk
                if len(content) > max_body:
                    raise TooLarge(max_body)
            answer_headers = reader.text_headers()
            content_bytes = _decoded(bytes(content), answer_headers.get("content-encoding", "").lower(), max_body)
            self._release(reader)
            released = True
            return Answer(reader.status, answer_headers, content_bytes)
        finally:
            if not released:
                reader.done = False  # read in part: never reused
                self._release(reader)
            self._slots.release()

    # -- httpx.BaseTransport ---------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1".encode("ascii")]
        head += [name + b": " + value for name, value in request.headers.raw]
        data = b"\r\n".join(head) + b"\r\n\r\n" + request.read()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        reader = self._open_exchange(origin, request.method, data, timeouts)  # httpx names the request in errors
        return httpx.Response(
            reader.status,
            headers=reader.headers,
            stream=_Reply(reader, self._slots.release),
            extensions={"http_version": b"HTTP/1.1"},
        )

    def close(self) -> None:
        with self._lock:
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    # -- exchanges and connections -----------------------------------------------------------------------------

    def _open_exchange(self, origin: Origin, method: str, data: bytes, timeouts: Mapping[str, float | None]) -> _Reader:
        """Take a slot and a connection, write the request, read the reply's head; the slot stays taken (the
        caller gives it back once the body was read) unless this fails."""
        if not self._slots.acquire(timeout=self._wait(timeouts.get("pool"), httpx.PoolTimeout)):
            raise httpx.PoolTimeout("no connection came free within the pool timeout")
        try:
            connection, reused = self._checkout(origin, timeouts.get("connect"))
            try:
                return self._exchange(connection, method, data, timeouts, stale_is=reused)
            except _Stale:  # the server closed it while idle and we wrote before its FIN arrived: once more
                connection = self._connect(origin, timeouts.get("connect"))
                return self._exchange(connection, method, data, timeouts, stale_is=False)
        except BaseException:
            self._slots.release()
            raise

    def _wait(self, timeout: float | None, error: type[httpx.TimeoutException]) -> float:
        try:
            limit = self.remaining(timeout)
        except TimeoutError as exc:
            raise error(str(exc)) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from None
        return -1 if limit is None else limit

    def _checkout(self, origin: Origin, connect_timeout: float | None) -> tuple[_Connection, bool]:
        """A live idle connection to ``origin``, or a new one; and whether it was reused."""
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                return self._connect(origin, connect_timeout), False
            if now - connection.idle_since < self._expiry and not connection.dead():
                return connection, True
            connection.close()

    def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        limit = self._wait(timeout, httpx.ConnectTimeout)
        try:
            sock = socket.create_connection((host, port), timeout=None if limit < 0 else limit)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from None
        connection = _Connection(self, origin, sock)
        with self._lock:
            self._open.add(connection)
        if self.cancelled.is_set():  # cancelled while connecting: do not let this one slip through
            connection.close()
            raise httpx.ConnectError("the exchange was cancelled: the gateway is stopping")
        return connection

    def _exchange(
        self,
        connection: _Connection,
        method: str,
        data: bytes,
        timeouts: Mapping[str, float | None],
        *,
        stale_is: bool,
    ) -> _Reader:
        """Write the request in one piece and read the reply's status line and headers.

        ``stale_is``: the connection was reused, so a reset or a close before the first byte of the reply means it
        had been closed while idle (``_Stale``), not that the target failed: the request was never read."""
        try:
            connection.send(data, timeouts.get("write"))
        except ConnectionError:
            connection.close()
            if stale_is and not self.cancelled.is_set():
                raise _Stale() from None
            raise httpx.WriteError("the connection was reset") from None
        except TimeoutError as exc:
            connection.close()
            raise httpx.WriteTimeout(str(exc) or "write timed out") from None
        except OSError as exc:
            connection.close()
            raise httpx.WriteError(str(exc)) from None
        connection.read_timeout = timeouts.get("read")
        reader = _Reader(connection, method)
        try:
            reader.head()
        except ConnectionResetError:  # closed before the first byte
            connection.close()
            if stale_is and not self.cancelled.is_set():
                raise _Stale() from None
            raise httpx.RemoteProtocolError("the server closed the connection without a reply") from None
        except BaseException:
            connection.close()
            raise
        return reader

    def _release(self, reader: _Reader) -> None:
        """Back to the pool if the reply was read to its end and the server keeps the connection; else closed."""
        connection = reader.connection
        if reader.reusable and not self.cancelled.is_set():
            connection.idle_since = time.monotonic()
            with self._lock:
                idle = self._idle.setdefault(connection.origin, [])
                if len(idle) < self._keep:
                    idle.append(connection)
                    return
        connection.close()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._open.discard(connection)


def _host(origin: Origin) -> str:
    scheme, host, port = origin
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"
