"""The httpx transport on the standard library (``adapters.wire``), against a scripted server on loopback."""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from adapters.wire import Answer, TooLarge, WireTransport

Script = Callable[[socket.socket, bytes], bool]  # answers one request; False: close the connection


def _request(handler: socketserver.StreamRequestHandler) -> bytes | None:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = handler.rfile.read(1)
        if not byte:
            return None
        head += byte
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head + handler.rfile.read(length)


class Server:
    """Counts connections and requests; each request is answered by ``script``."""

    def __init__(self, script: Script) -> None:
        self.connections, self.requests = 0, []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                while (request := _request(self)) is not None:
                    server.requests.append(request)
                    if not script(self.connection, request):
                        return

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], Server]]:
    started: list[Server] = []

    def start(script: Script) -> Server:
        started.append(Server(script))
        return started[-1]

    yield start
    for server in started:
        server.close()


def client(connections: int = 2) -> httpx.Client:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(transport=WireTransport(limits), timeout=httpx.Timeout(2.0, pool=0.2))


def ok(sock: socket.socket, request: bytes) -> bool:
    body = request.split(b"\r\n\r\n", 1)[1] or b"empty"
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return True


def test_requests_go_out_whole_and_connections_are_kept_alive(serve: Callable[[Script], Server]) -> None:
    server = serve(ok)
    with client() as http:
        for i in range(5):
            reply = http.put(f"{server.url}/cms/api/notices/n{i}?a=1", content=f"notice {i}".encode())
            assert (reply.status_code, reply.text, reply.headers["content-type"]) == (200, f"notice {i}", "text/plain")
        assert http.get(f"{server.url}/x").text == "empty"
    assert server.connections == 1 and len(server.requests) == 6
    first = server.requests[0]
    assert first.startswith(b"PUT /cms/api/notices/n0?a=1 HTTP/1.1\r\n") and b"\r\nhost: 127.0.0.1:" in first.lower()
    assert first.endswith(b"\r\n\r\nnotice 0") and b"content-length: 8" in first.lower()


def test_a_chunked_reply_is_read_whole_and_a_short_one_is_an_error(serve: Callable[[Script], Server]) -> None:
    def chunked(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        return True

    def short(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        return False

    with client() as http:
        assert http.get(f"{serve(chunked).url}/").text == "hello world"
        with pytest.raises(httpx.RemoteProtocolError, match="91 bytes before its Content-Length"):
            http.get(f"{serve(short).url}/")


def test_a_connection_the_server_closed_while_idle_is_not_reused(serve: Callable[[Script], Server]) -> None:
    def once(sock: socket.socket, request: bytes) -> bool:
        ok(sock, request)
        return False  # answers, then hangs up without saying Connection: close

    server = serve(once)
    with client() as http:
        assert [http.get(f"{server.url}/{i}").text for i in range(3)] == ["empty"] * 3
    assert server.connections == 3


def test_a_silent_server_times_out_and_a_full_pool_refuses_within_its_timeout(
    serve: Callable[[Script], Server],
) -> None:
    release = threading.Event()

    def silent(sock: socket.socket, request: bytes) -> bool:
        release.wait(5)
        return False

    server = serve(silent)
    http = httpx.Client(transport=WireTransport(httpx.Limits(max_connections=1)), timeout=httpx.Timeout(5, pool=0.2))
    with pytest.raises(httpx.ReadTimeout):
        http.get(f"{server.url}/", timeout=httpx.Timeout(0.3, pool=0.2))  # short for the silent server only
    release.set()
    answering = serve(ok)
    with http.stream("GET", f"{answering.url}/held") as held:  # its body unread: the only connection stays taken
        with pytest.raises(httpx.PoolTimeout):
            http.get(f"{answering.url}/waiting")
        assert held.read() == b"empty"
    assert http.get(f"{answering.url}/after").text == "empty"  # given back once the first reply was read
    http.close()


def test_cancel_ends_an_exchange_under_way_and_refuses_new_ones(serve: Callable[[Script], Server]) -> None:
    arrived, release = threading.Event(), threading.Event()

    def hang(sock: socket.socket, request: bytes) -> bool:
        arrived.set()
        release.wait(10)
        return False

    server = serve(hang)
    wire = WireTransport(httpx.Limits(max_connections=2))
    http = httpx.Client(transport=wire, timeout=30)
    failure: list[BaseException] = []

    def call() -> None:
        try:
            http.get(f"{server.url}/")
        except httpx.TransportError as exc:
            failure.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert arrived.wait(5)
    wire.cancel()
    caller.join(5)
    release.set()
    assert not caller.is_alive() and len(failure) == 1
    with pytest.raises(httpx.ConnectError, match="cancelled"):
        http.get(f"{server.url}/")
    http.close()


# -- fetch: the gateway's own way in, without httpx's request and response objects -------------------------


TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 0.2}


def fetch(wire: WireTransport, url: str, method: str = "GET", body: bytes = b"", max_body: int = 1 << 20) -> Answer:
    origin, prefix = wire.origin(url)
    return wire.fetch(origin, method, prefix + "/n?a=1", {"X-Token": "t"}, body, TIMEOUTS, max_body)


def test_fetch_sends_a_whole_request_and_reads_headers_as_httpx_shows_them(serve: Callable[[Script], Server]) -> None:
    def twice(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 201 Created\r\nSet-Thing: a\r\nSET-THING: b\r\nContent-Length: 2\r\n\r\nok")
        return True

    server = serve(twice)
    wire = WireTransport(httpx.Limits(max_connections=2))
    answers = [fetch(wire, f"{server.url}/cms", "PUT", b"notice") for _ in range(3)]
    assert answers[0] == Answer(201, {"set-thing": "a, b", "content-length": "2"}, b"ok") == answers[2]
    assert server.connections == 1  # kept alive
    first = server.requests[0]
    port = server.url.rsplit(":", 1)[1]
    assert first.startswith(f"PUT /cms/n?a=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Token: t\r\n".encode())
    assert b"\r\nContent-Length: 6\r\n" in first and first.endswith(b"\r\n\r\nnotice")
    with pytest.raises(httpx.LocalProtocolError, match="line break"):
        wire.fetch(wire.origin(server.url)[0], "GET", "/", {"X": "a\r\nInjected: yes"}, b"", TIMEOUTS, 100)
    assert len(server.requests) == 3
    wire.close()


def test_fetch_reads_a_body_that_ends_with_the_connection_and_unpacks_gzip(serve: Callable[[Script], Server]) -> None:
    def until_close(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        sock.sendall(b"it")
        return False

    packed = gzip.compress(b"unpacked " * 10)

    def gzipped(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
        )
        return True

    wire = WireTransport(httpx.Limits(max_connections=2))
    closing = serve(until_close)
    assert [fetch(wire, closing.url).body for _ in range(2)] == [b"all of it"] * 2
    assert closing.connections == 2  # such a connection is over with its reply
    assert fetch(wire, serve(gzipped).url).body == b"unpacked " * 10
    with pytest.raises(TooLarge):  # the limit holds for what the body unpacks to
        fetch(wire, serve(gzipped).url, max_body=50)
    wire.close()


def test_fetch_cuts_off_a_body_over_its_limit_and_drops_the_connection(serve: Callable[[Script], Server]) -> None:
    def big(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            sock.sendall(b"400\r\n" + b"x" * 1024 + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        return True

    server = serve(big)
    wire = WireTransport(httpx.Limits(max_connections=1))
    with pytest.raises(TooLarge, match="exceeds 2000 bytes"):
        fetch(wire, server.url, max_body=2000)
    assert len(fetch(wire, server.url).body) == 4096  # the slot was given back; a new connection
    assert server.connections == 2
    wire.close()


def test_fetch_sends_again_once_on_a_connection_closed_while_idle(serve: Callable[[Script], Server]) -> None:
    answered = []

    def once(sock: socket.socket, request: bytes) -> bool:
        answered.append(request)  # before the reply: once the client has it, the test may look
        ok(sock, request)
        return False  # hangs up without saying Connection: close

    server = serve(once)
    wire = WireTransport(httpx.Limits(max_connections=1))
    assert [fetch(wire, server.url, "PUT", b"n%d" % i).body for i in range(3)] == [b"n0", b"n1", b"n2"]
    assert len(answered) == 3 and server.connections == 3
    wire.close()


def test_fetch_skips_an_informational_reply_and_reads_no_body_after_204(serve: Callable[[Script], Server]) -> None:
    def hints(sock: socket.socket, request: bytes) -> bool:
        if request.startswith(b"DELETE"):
            sock.sendall(b"HTTP/1.1 204 No Content\r\nX-Gone: yes\r\n\r\n")
        else:
            sock.sendall(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            )
        return True

    server = serve(hints)
    wire = WireTransport(httpx.Limits(max_connections=1))
    assert fetch(wire, server.url) == Answer(200, {"content-length": "2"}, b"ok")
    assert fetch(wire, server.url, "DELETE") == Answer(204, {"x-gone": "yes"}, b"")
    assert fetch(wire, server.url).body == b"ok" and server.connections == 1
    wire.close()
