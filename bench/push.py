"""Push throughput per target, beside the same client's raw request rate against the same server.

Starts ``credit-gateway sandbox`` as its own process, then from this one process:

1. raw request rate: the target's own httpx client sending ``GET /_admin/noop`` one request at a time;
2. items/s: records pushed through each target's adapter (render, sign, send, interpret), ``--inflight``
   exchanges at a time, with the two-stage platforms' business results fetched for each receipt.

It prints items/s, the ratio to the raw request rate (the gain from batching), and the peak RSS of both
processes. Usage: python bench/push.py [--items 20000] [--portal-items 2000] [--inflight 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.base import Accepted, Item, Operation, Received, Retryable  # noqa: E402
from adapters.client import TargetClient  # noqa: E402
from bench.common import free_port, peak_rss_mb  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.targets import build_clients, point_at_sandbox  # noqa: E402
from schemas.enums import Kind  # noqa: E402
from schemas.validation import Canonical, validate  # noqa: E402
from tests.factories import licence  # noqa: E402


def start_sandbox() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "sandbox", "--port", str(port), "--result-delay", "0"],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # ready when uvicorn says so
        if b"Uvicorn running on" in line:
            break
    return proc, f"http://127.0.0.1:{port}"


def items(target: str, n: int) -> list[Item]:
    today = dt.date(2026, 11, 25)
    out = []
    for i in range(n):
        result = validate(Kind.LICENCE, licence(f"P-{i}", content=f"准予核发施工许可证，编号{i}"), today=today)
        assert isinstance(result, Canonical)
        out.append(Item(f"cg-{i}-v1-u-{target}", f"hhzjj-{i}", Kind.LICENCE, Operation.UPSERT, 1, result.content))
    return out


def raw_rate(client: TargetClient, base: str, seconds: float = 2.0) -> float:
    http = client.transport.client
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        http.get(f"{base}/_admin/noop").raise_for_status()
        count += 1
    return count / (time.perf_counter() - started)


def push(client: TargetClient, batch: list[Item], inflight: int) -> tuple[float, int]:
    """Items/s for ``batch``, and how many items had to be sent again after a retryable outcome (the delivery
    engine would retry them the same way: same keys, so the platform takes each once)."""
    size = client.adapter.max_items
    retried: list[int] = []

    def one(chunk: list[Item]) -> int:
        pending = chunk
        for _ in range(3):
            outcomes = client.deliver(pending)
            if client.two_stage:
                receipts = {o.receipt for o in outcomes if isinstance(o, Received)}
                keys = [i.key for i in pending]
                outcomes = [r for receipt in receipts for r in client.results(receipt, keys) or []]
            again = {o.key for o in outcomes if isinstance(o, Retryable)}
            assert all(isinstance(o, Accepted | Retryable) for o in outcomes), outcomes[:3]
            pending = [i for i in pending if i.key in again]
            if not pending:
                return len(chunk)
            retried.append(len(pending))
        raise AssertionError(f"{len(pending)} items still not accepted after 3 tries")

    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=inflight) as pool:
        total = sum(pool.map(one, chunks))
    return total / (time.perf_counter() - started), sum(retried)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20000, help="items per batching target")
    parser.add_argument("--portal-items", type=int, default=2000, help="items for the portal (one request each)")
    parser.add_argument("--inflight", type=int, default=3, help="exchanges in flight at once")
    args = parser.parse_args()
    proc, base = start_sandbox()
    rows: list[dict[str, Any]] = []
    try:
        settings = Settings()
        point_at_sandbox(settings, base)
        clients = build_clients(settings, SystemClock())
        for name, client in clients.items():
            n = args.portal_items if name == "portal" else args.items
            batch = items(name, n)
            raw = raw_rate(client, base)
            rate, retried = push(client, batch, args.inflight)
            rows.append({"target": name, "items": n, "rate": rate, "raw": raw, "retried": retried})
            client.close()
        sandbox_rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npush benchmark: one client process, {args.inflight} exchanges in flight; {os.cpu_count()} cores")
    print(f"{'target':11} {'items':>6} {'items/s':>9} {'raw req/s':>10} {'ratio':>6}  goal")
    for r in rows:
        goal = (
            "≥5×, ≥3000/s" if r["target"] == "national" else ("≥5×" if r["target"] != "portal" else "(1 item/request)")
        )
        again = f"  ({r['retried']} sent again after a retryable error)" if r["retried"] else ""
        print(
            f"{r['target']:11} {r['items']:6} {r['rate']:9.0f} {r['raw']:10.0f} {r['rate'] / r['raw']:5.1f}×  {goal}"
            f"{again}"
        )
    print(f"peak RSS: client {client_rss:.0f} MB, sandbox {sandbox_rss:.0f} MB")


if __name__ == "__main__":
    main()
