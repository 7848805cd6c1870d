"""Giving freed memory back to the operating system after large requests.

glibc keeps what a thread freed in that thread's arena for reuse, so after a burst of large batches parsed on
several threadpool threads the process stays as large as at the peak (183 → 552 MB measured with 16 concurrent
7.9 MB batches). Collecting cyclic garbage first (pydantic and SQLAlchemy leave some) frees more, then
``malloc_trim(0)`` returns the free pages of every arena: after four concurrent 7.6 MB batches the process keeps
+41 MB instead of +157 MB. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back() -> bool:
    """Return free heap pages to the OS; True if the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    gc.collect()
    trim(0)
    return True
