"""Give the C heap's free pages back after a burst of large, short-lived buffers.

A backup (chunk buffers of up to ``chunk_max_bytes`` read in worker threads, zstd contexts),
a verify, a restore or a drill allocates tens of MiB that it frees when done; glibc keeps the
freed memory in the threads' arenas (fragmented: a live block above it pins the heap top), so
the operator's resident memory stays up by that much after every such job — measured under
``bench/load_with_faults.py``: the first scheduled backup left ~20-30 MiB of free arena
memory resident (``mallinfo2`` fordblks 7 → 31 MiB while tracemalloc's heap stayed at
3 MiB). ``malloc_trim(0)`` returns every free page of every arena to the OS
(``MADV_DONTNEED``); it runs in the job's worker thread, never on the loop. Off glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

__all__ = ["then_trim", "trim"]

T = TypeVar("T")


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn  # type: ignore[no-any-return]


def trim() -> bool:
    """Release the C heap's free pages; True when some were released (False off glibc)."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


def then_trim(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, then ``trim()`` (also when it raises): for ``asyncio.to_thread``."""
    try:
        return fn(*args)
    finally:
        trim()
