"""asyncio helpers.

``wait_or_timeout`` replaces ``asyncio.wait_for`` in long-running loops: on Python 3.11
``wait_for`` can swallow a cancellation that races with the awaited result, and a loop that
should stop keeps running (its ``gather`` at shutdown then waits forever).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["TIMED_OUT", "wait_or_timeout"]

T = TypeVar("T")
TIMED_OUT = object()


async def wait_or_timeout(aw: Awaitable[T], timeout: float | None) -> T | object:
    """The result of ``aw``, or ``TIMED_OUT`` after ``timeout`` seconds (``aw`` is cancelled).
    A cancellation of the caller always propagates."""
    fut = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({fut}, timeout=timeout)
    except BaseException:
        fut.cancel()
        raise
    if not done:
        fut.cancel()
        return TIMED_OUT
    return fut.result()
