"""``/healthz``, ``/readyz`` and ``/metrics`` of a ``credit-gateway worker`` process, on a port of its own.

Why: a worker has no HTTP API, yet an orchestrator must know it is alive and ready (compose health checks,
Kubernetes probes) and Prometheus must scrape its breakers. The standard library's threading HTTP server is
enough for three GET routes polled every few seconds; it runs on one daemon thread started by ``start``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.metrics import Metrics
from gateway.worker import Worker
from outbox.errors import StoreError
from outbox.store import Store


class Probe:
    def __init__(self, worker: Worker, store: Store, metrics: Metrics, *, host: str, port: int) -> None:
        self.worker, self.store, self.metrics = worker, store, metrics
        probe = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = probe.answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not worth a line
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="worker-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/healthz":
            return _json(200, {"status": "ok"})
        if path == "/readyz":
            return self._ready()
        if path == "/metrics":
            # every target's shared health, read from the database (the same values as serve's /metrics); with
            # the database down /readyz says so and the other metrics still answer
            with contextlib.suppress(StoreError):
                self.metrics.health(self.worker.status())
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return _json(
            404,
            {
                "type": "urn:credit-gateway:problem:not-found",
                "title": "Not found",
                "status": 404,
                "detail": f"no {path} here: /healthz, /readyz, /metrics",
            },
        )

    def _ready(self) -> tuple[int, str, bytes]:
        if not self.worker.running:
            return _problem("the delivery worker is not running")
        try:
            current = self.store.schema_is_current()
        except StoreError as exc:
            return _problem(f"database unreachable: {exc}")
        if not current:
            return _problem("database schema is not current: run `credit-gateway migrate`")
        return _json(200, {"status": "ready", "database": "ok", "schema": "current", "worker": "running"})


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    content_type = "application/problem+json" if status >= 400 else "application/json"
    return status, content_type, json.dumps(body, ensure_ascii=False).encode()


def _problem(detail: str) -> tuple[int, str, bytes]:
    return _json(
        503, {"type": "urn:credit-gateway:problem:not-ready", "title": "Not ready", "status": 503, "detail": detail}
    )
