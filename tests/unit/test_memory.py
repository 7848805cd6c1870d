"""gateway.memory in fresh interpreters (glibc's malloc state is per process, and this one's is not fresh)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Frees a 1 MB block, then asks for a 200 KB one: prints whether the second came from its own mmap.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from gateway import memory

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Info
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    fixed = memory.map_large_blocks() if sys.argv[1] == "fixed" else False
    libc.free(libc.malloc(1 << 20))  # glibc raises its threshold to 1 MB here, unless it was fixed
    before = libc.mallinfo2().hblks
    block = libc.malloc(200 * 1024)
    print(fixed, libc.mallinfo2().hblks - before)
    libc.free(block)
    """
)


def probe(mode: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=clean | env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_large_blocks_keep_coming_from_mmap_after_a_larger_one_was_freed() -> None:
    assert probe("as glibc does") == "False 0"  # the 200 KB block came from the heap: the threshold had risen
    assert probe("fixed") == "True 1"  # its own mapping, given back whole when freed


def test_an_operators_own_malloc_setting_wins() -> None:
    assert probe("fixed", MALLOC_MMAP_THRESHOLD_="4194304") == "False 0"
    assert probe("fixed", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4194304") == "False 0"
