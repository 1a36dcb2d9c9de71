"""TCP reachability: connect latency and loss to ``host:port`` targets (asyncio, concurrent)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

__all__ = ["probe_targets", "tcp_connect"]


async def tcp_connect(host: str, port: int, timeout: float) -> tuple[float | None, str | None]:
    """One TCP connect: ``(latency_ms, None)`` or ``(None, error)``."""
    t0 = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return None, f"timeout after {timeout}s"
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    ms = (time.perf_counter() - t0) * 1000.0
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return ms, None


async def _probe_one(target: str, timeout: float, attempts: int) -> dict[str, Any]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return {"latency_ms": None, "loss_percent": None,
                "error": f"target {target!r} must be host:port"}
    results = [await tcp_connect(host, int(port), timeout) for _ in range(attempts)]
    ok = [ms for ms, _ in results if ms is not None]
    errors = [e for _, e in results if e is not None]
    return {"latency_ms": round(statistics.median(ok), 3) if ok else None,
            "loss_percent": round(100.0 * (attempts - len(ok)) / attempts, 1),
            "error": errors[-1] if errors else None}


async def probe_targets(targets: list[str], timeout: float, attempts: int
                        ) -> dict[str, dict[str, Any]]:
    """Probe every target concurrently (each with ``attempts`` sequential connects)."""
    results = await asyncio.gather(*(_probe_one(t, timeout, attempts) for t in targets))
    return dict(zip(targets, results))
