"""gateway.memory in fresh interpreters (glibc's malloc state is per process, and this one's is not fresh)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# As a process's imports do, frees a 4 MB block first (glibc raises its thresholds to it). Then prints whether
# the fix was applied, whether a 200 KB block came from its own mmap, and whether 2 MB of small blocks freed at the
# top of the heap went back to the system.
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
    libc.free(libc.malloc(4 << 20))
    fixed = memory.map_large_blocks() if sys.argv[1] == "fixed" else False
    before = libc.mallinfo2().hblks
    block = libc.malloc(200 * 1024)
    mapped = libc.mallinfo2().hblks - before
    libc.free(block)
    small = [libc.malloc(16 * 1024) for _ in range(128)]
    grown = libc.mallinfo2().arena
    for pointer in reversed(small):
        libc.free(pointer)
    print(fixed, mapped, libc.mallinfo2().arena < grown - (1 << 20))
    """
)


def probe(mode: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=clean | env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_large_blocks_keep_coming_from_mmap_and_a_freed_heap_top_is_returned_after_a_larger_block() -> None:
    assert probe("as glibc does") == "False 0 False"  # from the heap, and the freed top kept: both thresholds rose
    assert probe("fixed") == "True 1 True"  # its own mapping, given back whole when freed; the top trimmed


def test_an_operators_own_malloc_setting_wins() -> None:
    assert probe("fixed", MALLOC_MMAP_THRESHOLD_="4194304") == "False 0 True"  # glibc never raised them
    assert probe("fixed", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4194304") == "False 0 True"
    assert probe("fixed", MALLOC_TRIM_THRESHOLD_="8388608") == "False 1 False"  # the top kept, as asked
