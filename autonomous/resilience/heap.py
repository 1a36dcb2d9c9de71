"""Keep large, short-lived buffers from staying resident in the C heap.

A backup (chunk buffers of up to ``chunk_max_bytes`` read in worker threads, zstd contexts),
a verify, a restore or a drill allocates tens of MiB that it frees when done; glibc keeps the
freed memory in the threads' arenas (fragmented: a live block above it pins the heap top), so
the operator's resident memory stays up by that much after every such job — measured under
``bench/load_with_faults.py``: the first scheduled backup left ~20-30 MiB of free arena
memory resident (``mallinfo2`` fordblks 7 → 31 MiB while tracemalloc's heap stayed at
3 MiB). ``malloc_trim(0)`` returns every free page of every arena to the OS
(``MADV_DONTNEED``); it runs in the job's worker thread, never on the loop. Off glibc it does
nothing.

Underneath: glibc serves a block above ``M_MMAP_THRESHOLD`` (128 KiB) with its own mmap and
unmaps it on free, but after the first such free it raises the threshold to that block's
size (up to 32 MiB): from then on the backup's 1 MiB chunk buffers come from the worker
threads' arenas and their pages stay there, fragmented, when freed.
``fix_mmap_threshold()`` (the operator calls it at start) sets the threshold explicitly,
which turns that adjustment off: every large buffer is mapped and unmapped on its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

__all__ = ["fix_mmap_threshold", "libc_function", "then_trim", "trim"]

#: mallopt parameters (glibc malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, kept fixed

T = TypeVar("T")


@lru_cache(maxsize=4)
def libc_function(name: str) -> Any:
    """The C library's function ``name`` (ctypes, looked up once), or None off glibc or when
    this libc has no such function."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Blocks of ``nbytes`` and more get their own mapping, always (see the module); True
    when glibc took it."""
    fn = libc_function("mallopt")
    if fn is None:
        return False
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(fn(_M_MMAP_THRESHOLD, nbytes))


def trim() -> bool:
    """Release the C heap's free pages; True when some were released (False off glibc)."""
    fn = libc_function("malloc_trim")
    if fn is None:
        return False
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(fn(0))


def then_trim(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, then ``trim()`` (also when it raises): for ``asyncio.to_thread``."""
    try:
        return fn(*args)
    finally:
        trim()
