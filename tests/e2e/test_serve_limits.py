"""Issue 8 against a real ``credit-gateway serve`` process: memory under concurrent large batches stays bounded and
is given back, a keyless 100 MB body costs no memory, and a request uvicorn cannot parse gets a problem document."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from gateway.settings import Settings
from tests.e2e.test_cli import env_for, free_port, run, running
from tests.factories import licence

MB = 1024 * 1024
CONCURRENT = 16


class Server:
    def __init__(self, base: str, key: str, process: psutil.Process) -> None:
        self.base, self.key, self.process = base, key, process

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = env_for(
        tmp_path,
        CREDIT_GATEWAY_PORT=str(port),
        CREDIT_GATEWAY_DELIVERY__IN_SERVE="false",
        CREDIT_GATEWAY_JOBS__IN_SERVE="false",
    )
    assert run(["migrate"], env, tmp_path).returncode == 0
    created = run(["keys", "create", "--name", "approval-system", "--role", "source"], env, tmp_path)
    key = created.stdout.strip().splitlines()[-1]
    before = {p.pid for p in psutil.Process().children()}
    with running(["serve"], env, tmp_path):
        [process] = [p for p in psutil.Process().children() if p.pid not in before]
        yield Server(f"http://127.0.0.1:{port}", key, process)


class PeakRss:
    """Samples a process's RSS on a thread until stopped: a measurement, not a synchronisation."""

    def __init__(self, process: psutil.Process) -> None:
        self.process, self.peak = process, int(process.memory_info().rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, int(self.process.memory_info().rss))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def big_batch(n: int) -> bytes:
    """1000 licences with long content: about 7.6 MB, just under the 8 MiB body limit."""
    body = orjson.dumps({"items": [licence(f"M{n}-{i}", content="准" * 2300) for i in range(1000)]})
    assert 7 * MB < len(body) < Settings().max_body_bytes
    return body


@pytest.mark.slow
@pytest.mark.timeout(600)  # 130 MB of uploads and 4,000 stored records; slow when the machine is shared
def test_concurrent_large_batches_are_bounded_and_memory_is_given_back(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.base, timeout=120) as http:  # warm up every code path once
        warm = http.post("/api/v1/licences/batch", json={"items": [licence("WARM")]}, headers=headers)
        assert warm.status_code == 200
    bodies = [big_batch(n) for n in range(CONCURRENT)]
    baseline = server.rss()
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    go = threading.Barrier(CONCURRENT)

    def post(body: bytes) -> None:
        with httpx.Client(base_url=server.base, timeout=120) as http:
            go.wait(timeout=30)
            response = http.post("/api/v1/licences/batch", content=body, headers=headers)
        with lock:
            answers.append(response)

    with PeakRss(server.process) as peak:
        threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert len(answers) == CONCURRENT
    ok = [a for a in answers if a.status_code == 200]
    busy = [a for a in answers if a.status_code == 503]
    assert len(ok) + len(busy) == CONCURRENT, [a.text[:200] for a in answers]
    assert ok and busy, "some batches are taken and the excess is refused"
    for answer in ok:
        assert [r["status"] for r in answer.json()["results"]] == ["created"] * 1000
    for answer in busy:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:credit-gateway:problem:server-busy"
        assert int(answer.headers["retry-after"]) >= 1
    # The bound: MAX_BODY_BYTES_IN_FLIGHT (32 MiB) admits four 7.6 MB batches at once; a batch parsed, validated and
    # stored costs about 5x its bytes in Python objects (measured: +147 MB for four), so 6x leaves room. Without the
    # budget all sixteen are parsed at once (the issue measured +369 MB).
    budget = Settings().max_body_bytes_in_flight
    assert peak.peak - baseline < 6 * budget, f"peak {peak.peak / MB:.0f} MB from {baseline / MB:.0f} MB"
    # Given back: once the last large body is done, cyclic garbage is collected and free heap pages go back to the
    # OS (malloc_trim). What stays is SQLite's per-connection page caches and Python arenas pinned by long-lived
    # objects: measured +41 to +85 MB across CI runs (+157 MB without giving back, +369 MB in the issue), so 110 MB
    # still tells giving back from not; the whole process also stays under the 300 MB the gateway is held to.
    kept = 110 * MB
    deadline = threading.Event()
    timer = threading.Timer(30, deadline.set)
    timer.start()
    try:
        while server.rss() - baseline > kept and not deadline.wait(0.1):
            pass
    finally:
        timer.cancel()
    assert server.rss() - baseline <= kept, f"{server.rss() / MB:.0f} MB from {baseline / MB:.0f} MB after the burst"
    assert server.rss() < 300 * MB


def test_a_keyless_100_mb_body_is_refused_without_memory_growth(server: Server) -> None:
    def hundred_mb() -> Iterator[bytes]:
        chunk = b" " * MB
        for _ in range(100):
            yield chunk

    baseline = server.rss()
    with PeakRss(server.process) as peak, httpx.Client(base_url=server.base, timeout=120) as http:
        response = http.post(
            "/api/v1/dead-letters/cancel", content=hundred_mb(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    assert peak.peak - baseline < 16 * MB, f"the server grew by {(peak.peak - baseline) / MB:.0f} MB"


def test_a_request_uvicorn_cannot_parse_gets_a_problem_document(server: Server) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /api/v1/targets?x=" + b"a" * 120_000 + b" HTTP/1.1\r\nHost: gateway\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the server closes after its answer
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data[:300]
    assert b"content-type: application/problem+json" in head.lower()
    problem = orjson.loads(body)
    assert problem["type"] == "urn:credit-gateway:problem:bad-request" and problem["status"] == 400
