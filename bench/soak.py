"""A soak run: a steady trickle of records for minutes while one target flaps, watching memory and backlogs.

Memory that creeps up by a few MB an hour never shows in a one-minute benchmark; a backlog that grows on a healthy
target while another one fails is a lane stalling its neighbours. This run drives the gateway only from outside
(the CLI and HTTP, as an operator would), so it measures what ships, whatever the internals look like:

- ``credit-gateway sandbox`` (the four platforms, holding what they receive in a SQLite file unless
  ``--sandbox-in-memory``) and ``credit-gateway serve`` on a fresh PostgreSQL database
  (or ``--sqlite``), with ``--workers N`` separate ``credit-gateway worker`` processes if asked;
- records posted at ``--rate`` per second for ``--minutes``, by four clients (each post at its scheduled time);
- ``--flap`` (municipal by default) fails every request for ``--flap-seconds``, then recovers, in turns;
- every ``--every`` seconds: the RSS of each process and the backlog (deliveries not yet published) of each
  target, printed as one line; at the end, peak RSS (VmHWM) of each process, the RSS drift of the gateway between
  the first and the last third of the run, and the drain time of what was left once the posting stops.

It stops by itself. Usage: python bench/soak.py [--minutes 10] [--rate 100] [--workers 0] [--sqlite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import create_key, free_port, peak_rss_mb  # noqa: E402
from tests.factories import licence  # noqa: E402

TARGETS = ("national", "provincial", "municipal", "portal")
POSTERS = 4  # concurrent posting clients
CLI = [sys.executable, "-m", "gateway.cli"]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def start(args: Sequence[str], env: dict[str, str], ready: bytes | None) -> subprocess.Popen[bytes]:
    """Start a CLI process; wait for its readiness line on stderr when it has one, then keep draining stderr."""
    proc = subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stderr is not None
    if ready is not None:
        for line in proc.stderr:
            if ready in line:
                break
        else:
            raise SystemExit(f"{args[0]} ended before it was ready (exit {proc.wait()})")
    threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
    return proc


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


class Flapper(threading.Thread):
    """Turns a sandbox target's total failure on and off until stopped."""

    def __init__(self, sandbox: str, target: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.sandbox, self.target, self.seconds = sandbox, target, seconds
        self.stopped = threading.Event()
        self.turns = 0

    def run(self) -> None:
        with httpx.Client(base_url=self.sandbox, timeout=10) as http:
            failing = False
            while not self.stopped.wait(self.seconds):
                failing = not failing
                if failing:
                    http.put(f"/_admin/{self.target}/faults", json={"error_rate": 1.0}).raise_for_status()
                else:
                    http.delete(f"/_admin/{self.target}/faults").raise_for_status()
                self.turns += 1
            http.delete(f"/_admin/{self.target}/faults")


def backlogs(http: httpx.Client) -> dict[str, int]:
    """Deliveries of each target not yet in a final state, as the operators' API reports them."""
    answer = http.get("/api/v1/targets")
    answer.raise_for_status()
    final = {"published", "withdrawn", "cancelled", "dead", "superseded"}
    return {
        t["target"]: sum(n for state, n in t["deliveries"].items() if state not in final)
        for t in answer.json()["targets"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100, help="records posted per second")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=0, help="separate worker processes (0: serve delivers)")
    parser.add_argument("--flap", default="municipal", choices=TARGETS)
    parser.add_argument("--flap-seconds", type=float, default=30)
    parser.add_argument("--sqlite", action="store_true", help="the embedded default instead of PostgreSQL")
    parser.add_argument(
        "--sandbox-in-memory", action="store_true", help="the sandbox keeps every item in memory (its default)"
    )
    parser.add_argument(
        "--pg", default=os.environ.get("CREDIT_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cgsoak_"))
    db_name = f"cgsoak_{uuid.uuid4().hex[:8]}"
    if args.sqlite:
        db_url = f"sqlite:///{workdir / 'soak.db'}"
    else:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')  # type: ignore[arg-type]
        db_url = args.pg.rsplit("/", 1)[0] + f"/{db_name}"

    sandbox_port, port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env |= {
        "CREDIT_GATEWAY_DATABASE_URL": db_url,
        "CREDIT_GATEWAY_PORT": str(port),
        "CREDIT_GATEWAY_LOG_LEVEL": "INFO",  # serve says "running on" at INFO: readiness
        "CREDIT_GATEWAY_DELIVERY__IN_SERVE": "false" if args.workers else "true",
    }
    for target in TARGETS:
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BASE_URL"] = f"{sandbox_url}/{target}"

    subprocess.run([*CLI, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    source_key = create_key(env, ROOT)
    operator = (
        subprocess.run(
            [*CLI, "keys", "create", "--name", "soak-operator", "--role", "operator"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )

    # The platforms keep what they hold in a file, as real platforms keep it on disk: held in memory, the 240,000
    # items of a 10-minute run would grow the sandbox by a quarter of a gigabyte and hide its own memory behaviour.
    where = [] if args.sandbox_in_memory else ["--db", str(workdir / "sandbox.db")]
    sandbox = start(
        ["sandbox", "--port", str(sandbox_port), "--result-delay", "0", *where],
        dict(os.environ),
        b"Uvicorn running on",
    )
    server = start(["serve"], env, b"Uvicorn running on")
    workers = [start(["worker"], env, None) for _ in range(args.workers)]
    processes = {"serve": server, "sandbox": sandbox} | {f"worker-{i + 1}": w for i, w in enumerate(workers)}
    flapper = Flapper(sandbox_url, args.flap, args.flap_seconds)

    total = int(args.rate * args.minutes * 60)
    posted = 0
    samples: list[dict[str, float]] = []
    base = f"http://127.0.0.1:{port}"
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} records/s ({total} records) on {db_url.split(':')[0]}, "
        f"{args.flap} failing {args.flap_seconds:g} s in turns, sampled every {args.every:g} s"
    )
    lock, failures = threading.Lock(), []

    def post(first: int, started: float) -> None:
        """Every POSTERS-th record from ``first``, each at its scheduled time: one slow answer does not hold up the
        rate (a single sequential poster reached about 78 of 100 records/s)."""
        nonlocal posted
        headers = {"Authorization": f"Bearer {source_key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as poster:
            for i in range(first, total, POSTERS):
                if failures:
                    return
                delay = started + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                body = orjson.dumps(licence(f"SOAK{i:07d}", content=f"准予核发施工许可证，编号{i}"))
                answer = poster.post("/api/v1/licences", content=body)
                if answer.status_code != 201:
                    failures.append(f"post {i} answered {answer.status_code}: {answer.text[:300]}")
                    return
                with lock:
                    posted += 1

    try:
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {operator}"}) as watcher:
            flapper.start()
            started = time.perf_counter()
            next_sample = started
            posters = [threading.Thread(target=post, args=(k, started), daemon=True) for k in range(POSTERS)]
            for thread in posters:
                thread.start()
            while any(thread.is_alive() for thread in posters):
                now = time.perf_counter()
                if now >= next_sample:
                    sample = {f"{name} MB": rss_mb(p.pid) for name, p in processes.items()}
                    sample |= {f"{t} backlog": n for t, n in backlogs(watcher).items()}
                    sample["t"] = now - started
                    samples.append(sample)
                    print(
                        f"{sample['t']:6.0f} s  posted {posted:7d}  "
                        + "  ".join(f"{k} {v:.0f}" for k, v in sample.items() if k != "t"),
                        flush=True,
                    )
                    next_sample += args.every
                posters[0].join(timeout=max(0.0, min(0.5, next_sample - time.perf_counter())))
            if failures:
                raise SystemExit(failures[0])
            flapper.stopped.set()
            flapper.join(timeout=15)
            ended = time.perf_counter()
            while True:  # the flapping target recovers; everything left must drain
                left = backlogs(watcher)
                if sum(left.values()) == 0:
                    break
                if time.perf_counter() - ended > 600:
                    raise SystemExit(f"not drained 10 min after the last post: {left}")
                time.sleep(1)
            drain = time.perf_counter() - ended
            dead = {
                t["target"]: t["deliveries"].get("dead", 0) for t in watcher.get("/api/v1/targets").json()["targets"]
            }
        peaks = {name: peak_rss_mb(p.pid) for name, p in processes.items()}
    finally:
        flapper.stopped.set()
        stop([*workers, server, sandbox])
        if not args.sqlite:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')  # type: ignore[arg-type]
        shutil.rmtree(workdir, ignore_errors=True)  # the SQLite files: the sandbox's holds a quarter of a GB

    third = max(1, len(samples) // 3)
    healthy = [t for t in TARGETS if t != args.flap]
    print(
        f"\nposted {posted} records in {samples[-1]['t'] if samples else 0:.0f} s; "
        f"{args.flap} flapped {flapper.turns} times; everything published {drain:.1f} s after the last post"
    )
    for name in processes:
        early = statistics.median(s[f"{name} MB"] for s in samples[:third])
        late = statistics.median(s[f"{name} MB"] for s in samples[-third:])
        print(
            f"{name:10s} peak RSS {peaks[name]:6.1f} MB; median RSS first third {early:6.1f} MB, "
            f"last third {late:6.1f} MB (drift {late - early:+.1f} MB)"
        )
    for t in healthy:
        worst = max(s[f"{t} backlog"] for s in samples)
        print(f"{t:10s} backlog: worst sample {worst:.0f} (healthy target)")
    print(f"{args.flap:10s} backlog: worst sample {max(s[f'{args.flap} backlog'] for s in samples):.0f} (flapping)")
    print(f"dead deliveries: {dead}")
    over = [name for name, mb in peaks.items() if mb >= 300]
    print("every process under 300 MB" if not over else f"over 300 MB: {', '.join(over)}")


if __name__ == "__main__":
    main()
