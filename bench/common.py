"""Helpers the benchmarks share: a free loopback port, a process's peak resident memory."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the kernel's own record of the process's peak RSS, no sampling needed."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def create_key(env: dict[str, str], cwd: Path | None = None) -> str:
    """A source key made the way an operator makes one: ``credit-gateway keys create`` (the key is the last line)."""
    import subprocess
    import sys

    cli = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=cwd, check=True, capture_output=True)  # keys create makes none
    result = subprocess.run(
        [*cli, "keys", "create", "--name", "bench", "--role", "source"],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1]
