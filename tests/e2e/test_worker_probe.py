"""A worker's own /healthz, /readyz and /metrics (``credit-gateway worker --metrics-port``), what compose polls."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from gateway.metrics import Metrics
from gateway.worker_probe import Probe
from outbox.store import Store
from tests.e2e.test_cli import CLI, env_for, run


class FakeWorker:
    def __init__(self) -> None:
        self.running = False
        self.breaker = "closed"

    def status(self) -> dict[str, dict[str, object]]:
        return {"municipal": {"breaker": self.breaker, "alert": self.breaker == "open"}}


def test_probe_answers_liveness_readiness_and_metrics(store: Store) -> None:
    worker = FakeWorker()
    probe = Probe(worker, store, Metrics(), host="127.0.0.1", port=0)  # type: ignore[arg-type]
    probe.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{probe.port}", timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            not_ready = http.get("/readyz")
            assert not_ready.status_code == 503 and "not running" in not_ready.json()["detail"]
            assert not_ready.headers["content-type"] == "application/problem+json"
            worker.running = True
            assert http.get("/readyz").json()["status"] == "ready"
            worker.breaker = "open"
            scraped = http.get("/metrics", params={"ignored": 1})
            assert scraped.status_code == 200
            assert 'credit_gateway_target_up{target="municipal"} 0.0' in scraped.text
            assert 'credit_gateway_target_alert{target="municipal"} 1.0' in scraped.text
            assert http.get("/api/v1/licences").status_code == 404
    finally:
        probe.stop()


def test_worker_process_serves_its_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    proc = subprocess.Popen(
        [*CLI, "worker", "--metrics-port", "0"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen: list[str] = []
    port: Any = None
    for line in proc.stderr:  # blocks until the worker writes; no polling
        seen.append(line)
        if (port := re.search(r"worker probes on http://127\.0\.0\.1:(\d+)", line)) is not None:
            break
    try:
        assert port is not None, "".join(seen)
        base = f"http://127.0.0.1:{port.group(1)}"
        assert httpx.get(f"{base}/readyz", timeout=10).json()["worker"] == "running"
        assert "credit_gateway_target_up" in httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in "".join(seen) + rest


def test_worker_refuses_a_port_in_use(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(["migrate"], env, tmp_path).returncode == 0
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run(["worker", "--metrics-port", str(taken.getsockname()[1])], env, tmp_path)
    assert result.returncode == 1 and "--metrics-port" in result.stderr and "Traceback" not in result.stderr
