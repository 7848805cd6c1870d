"""Issue 8 defect 1: a target that sends its headers and then one byte every second must not stall its lane.

The trickling target is a real HTTP server on a loopback port: it reads the request, answers a status line and
headers promising a long body, then sends one byte a second until the client hangs up. httpx's read timeout never
trips (every read gets a byte); only the exchange deadline ends it. The other targets are the real sandbox.
"""

from __future__ import annotations

import contextlib
import queue
import select
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from gateway.app import build_app
from gateway.clock import ShiftableClock
from gateway.settings import DeliverySettings, Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import tables
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.e2e.test_cli import CLI, env_for, free_port, run
from tests.factories import licence

DEADLINE = 2.0  # seconds: the trickling target's exchange deadline in the in-process test
BYTE_EVERY = 1.0  # the trickle's pace: well inside any read timeout used here
SLACK = 3.0  # seconds past the deadline a loaded 2-core machine may take to notice; the trickle itself never ends


@dataclass
class Connection:
    opened: float  # time.monotonic() when the request had fully arrived
    closed: threading.Event = field(default_factory=threading.Event)
    closed_at: float | None = None
    sent: int = 0


class TricklingTarget:
    """Answers every request with headers at once and then one body byte per ``BYTE_EVERY``, for ever."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: queue.Queue[Connection] = queue.Queue()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by stop()
                return
            thread = threading.Thread(target=self.handle, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def handle(self, conn: socket.socket) -> None:
        with conn:
            if not self.read_request(conn):
                return
            seen = Connection(time.monotonic())
            self.connections.put(seen)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not self.stopping.is_set():
                # Wait for the client to hang up (readable, then b"") for one pace; otherwise send a byte.
                readable, _, _ = select.select([conn], [], [], BYTE_EVERY)
                if readable:
                    with contextlib.suppress(OSError):
                        if conn.recv(4096):
                            continue
                    break
                try:
                    conn.sendall(b" ")
                    seen.sent += 1
                except OSError:
                    break
            seen.closed_at = time.monotonic()
            seen.closed.set()

    @staticmethod
    def read_request(conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def next_connection(self, within: float = 30) -> Connection:
        return self.connections.get(timeout=within)

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def trickling() -> Iterator[TricklingTarget]:
    target = TricklingTarget()
    server = threading.Thread(target=target.serve, daemon=True)
    server.start()
    try:
        yield target
    finally:
        target.stop()
        server.join(timeout=5)


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


def deliveries(store: Store, target: str) -> list[Any]:
    d = tables.delivery
    return store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == target).order_by(d.c.id)).all())


def attempts(store: Store, target: str) -> list[Any]:
    a, d = tables.attempt, tables.delivery
    query = sa.select(a).join(d, d.c.id == a.c.delivery_id).where(d.c.target == target).order_by(a.c.id)
    return store.db.read(lambda c: c.execute(query).all())


def wait_for(events: queue.Queue[str], check: Any, within: float, what: str) -> Any:
    """Re-check ``check`` after each settled batch (the worker's callback) until it is truthy, for ``within`` s."""
    deadline = time.monotonic() + within
    while not (found := check()):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"not within {within} s: {what}"
        with contextlib.suppress(queue.Empty):
            events.get(timeout=min(remaining, 0.5))
    return found


def test_a_trickling_target_times_out_at_its_deadline_and_the_others_keep_publishing(
    settings: Settings, store: Store, source_key: str, operator_key: str, sandbox: str, trickling: TricklingTarget
) -> None:
    point_at_sandbox(settings, sandbox)
    national = settings.targets.national
    national.base_url = trickling.url
    national.timeout_seconds = 5  # per read: the trickle never trips it
    national.exchange_deadline_seconds = DEADLINE
    settings.delivery = DeliverySettings(
        push_interval_seconds=0.2,
        poll_interval_seconds=0.2,
        initial_backoff_seconds=0.3,
        max_backoff_seconds=1,
        breaker_failures=2,
        breaker_open_seconds=600,
    )
    store.routes = settings.targets.routes()
    clock = ShiftableClock()
    events: queue.Queue[str] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: events.put(t))
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        posted = httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
        assert posted.status_code == 201, posted.text

        first = trickling.next_connection()
        left = wait_for(
            events,
            lambda: (rows := deliveries(store, "national")) and rows[0].state != "in_flight" and time.monotonic(),
            DEADLINE + 10,
            "the national delivery leaves in_flight",
        )
        assert left - first.opened <= DEADLINE + SLACK, f"left in_flight {left - first.opened:.2f} s after the request"
        [row] = deliveries(store, "national")
        assert (row.state, row.last_code) == ("retry_wait", "timeout")
        assert row.next_attempt_at > row.updated_at  # with backoff, not at once
        assert first.closed.wait(5) and first.closed_at is not None
        assert first.closed_at - first.opened <= DEADLINE + SLACK  # the gateway hung up on it
        assert first.sent >= 1  # bytes kept coming: the per-read timeout alone would never have ended this
        [attempt] = attempts(store, "national")
        assert attempt.code == "timeout" and f"deadline of {DEADLINE:g} s" in attempt.message
        assert DEADLINE * 1000 - 100 <= attempt.duration_ms <= (DEADLINE + SLACK) * 1000

        # The second attempt trickles too: two failures in a row open the breaker, which then holds the lane.
        trickling.next_connection()
        # the shared breaker is written just before the exchange's deliveries settle: wait for both
        wait_for(
            events,
            lambda: worker.status()["national"]["breaker"] == "open" and len(attempts(store, "national")) == 2,
            DEADLINE + 10,
            "breaker opens and the second attempt is recorded",
        )
        national_attempts = attempts(store, "national")
        assert [a.code for a in national_attempts] == ["timeout", "timeout"]
        assert worker.status()["national"]["consecutive_failures"] == 2
        shown = httpx.get(f"{base}/api/v1/targets", headers=bearer(operator_key)).json()["targets"]
        assert next(t for t in shown if t["target"] == "national")["health"]["breaker"] == "open"

        # Meanwhile the other targets published, before the national lane had given up even its second attempt.
        others = ("provincial", "municipal", "portal")
        wait_for(
            events,
            lambda: all(deliveries(store, t)[0].state == "published" for t in others),
            20,
            "the other targets publish",
        )
        for target in others:
            [published] = deliveries(store, target)
            assert published.published_at <= national_attempts[-1].at, target


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], cwd: Path, ready: str | None) -> Iterator[subprocess.Popen[str]]:
    """A ``credit-gateway`` process (yielded once its log shows ``ready``); no traceback may appear in its log."""
    proc = subprocess.Popen([*CLI, *args], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    if ready is not None:
        for line in proc.stderr:  # blocks until the process writes; no polling
            seen.append(line)
            if ready in line:
                break
        else:
            proc.wait(timeout=30)
            pytest.fail("exited before it was ready:\n" + "".join(seen))
    drain = threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True)  # a full pipe would block it
    drain.start()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        drain.join(timeout=10)
        proc.stderr.close()
    assert not any("Traceback" in line for line in seen), "".join(seen)


def stop_within(proc: subprocess.Popen[str], grace: float) -> float:
    """SIGTERM ``proc`` and the seconds until it has exited (it must exit within twice the grace at most)."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=2 * grace + 10)
    return time.monotonic() - started


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_sigterm_ends_an_exchange_stuck_on_a_trickling_target_within_the_grace_period(
    command: str, tmp_path: Path, trickling: TricklingTarget
) -> None:
    grace = 10  # the default: exchanges are cancelled at 5 s, leaving 5 s to record that and exit on a busy host
    port = free_port()
    env = env_for(
        tmp_path,
        CREDIT_GATEWAY_PORT=str(port),
        CREDIT_GATEWAY_SHUTDOWN_GRACE_SECONDS=str(grace),
        CREDIT_GATEWAY_TARGETS__NATIONAL__BASE_URL=trickling.url,
        CREDIT_GATEWAY_TARGETS__NATIONAL__TIMEOUT_SECONDS="30",
        CREDIT_GATEWAY_TARGETS__NATIONAL__EXCHANGE_DEADLINE_SECONDS="600",  # only the stop can end it in time
        CREDIT_GATEWAY_TARGETS__PROVINCIAL__ENABLED="false",
        CREDIT_GATEWAY_TARGETS__MUNICIPAL__ENABLED="false",
        CREDIT_GATEWAY_TARGETS__PORTAL__ENABLED="false",
        CREDIT_GATEWAY_DELIVERY__IN_SERVE="true" if command == "serve" else "false",
        CREDIT_GATEWAY_JOBS__IN_SERVE="false",
    )
    assert run(["migrate"], env, tmp_path).returncode == 0
    created = run(["keys", "create", "--name", "test-source", "--role", "source"], env, tmp_path)
    key = created.stdout.strip().splitlines()[-1]
    with process(["serve"], env, tmp_path, ready="Uvicorn running on") as server:
        posted = httpx.post(f"http://127.0.0.1:{port}/api/v1/licences", json=licence(), headers=bearer(key))
        assert posted.status_code == 201, posted.text
        if command == "serve":
            stuck = trickling.next_connection(within=60)
            took = stop_within(server, grace)
        else:
            with process(["worker"], env, tmp_path, ready=None) as worker:
                stuck = trickling.next_connection(within=60)
                took = stop_within(worker, grace)
    assert took <= grace, f"{command} stopped {took:.2f} s after SIGTERM; its grace period is {grace} s"
    assert stuck.closed.wait(5)  # the gateway hung up on the target rather than leaving it to the kernel
    # Nothing lost: the cut-short item went back to the queue with the reason, ready for the next start.
    [(state, code)] = sqlite_rows(tmp_path / "cli.db", "SELECT state, last_code FROM delivery WHERE target='national'")
    assert (state, code) == ("retry_wait", "cancelled")
