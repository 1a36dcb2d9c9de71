"""The rollback gate: the loopback endpoint Traefik health-checks a rollout candidate against.

Switching the front back to the old version by rewriting Traefik's dynamic configuration
costs a reload: measured here, 80-120 ms of Traefik CPU per reload (it rebuilds every router,
middleware and load balancer), 50-650 ms from the write to the first old answer on the
loaded 2-core host. So the document that puts a candidate in a front already holds the way
back (see :func:`autonomous.gateway.config.dynamic_config`): the candidate's share goes
through a failover service whose primary is the candidate's load balancer, health-checked
every ``GATE_INTERVAL`` against this gate, and whose fallback is the old version's. The gate
answers ``200`` while the candidate is published (the evolution controller's data, read per
check) and ``503`` once it is not: the rollback's own unpublish closes the gate, Traefik's next
check takes the candidate out and every path — device paths too — goes to the still-running
old version without a reload (measured 15-30 ms). The gateway controller then rewrites the
document without the candidate as usual.

The gate is on the health-check path only, never on a request's path. It answers from the
operator's event loop (a few bytes per check, keep-alive); an operator stalled longer than
the check's timeout takes the candidate out, which only ever sends traffic to the version
that already ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import unquote

__all__ = ["Gate"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_CLOSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def parse_path(path: str) -> tuple[str, int] | None:
    """``/gate/<front>/<port>`` → (front, candidate port); None for anything else (pure)."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) != 4 or parts[1] != "gate" or not parts[3].isdigit():
        return None
    return unquote(parts[2]), int(parts[3])


class Gate:
    """``is_open(front, port)``: whether the candidate on ``port`` is still published."""

    def __init__(self, is_open: Callable[[str, int], bool], host: str = "127.0.0.1") -> None:
        self.is_open = is_open
        self.host = host
        self.port = 0
        # (front, port) → time.perf_counter() of the first 503 answered since the last 200:
        # when Traefik learnt of a closed gate (read by the rollout benchmark)
        self.closed_at: dict[tuple[str, int], float] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        self.port = 0

    def answer(self, path: str) -> bytes:
        key = parse_path(path)
        if key is None:
            return _BAD
        if self.is_open(*key):
            self.closed_at.pop(key, None)
            return _OK
        self.closed_at.setdefault(key, time.perf_counter())
        return _CLOSED

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: Traefik's checker reuses its connection
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                out = self.answer(line[1]) if len(line) == 3 else _BAD
                writer.write(out)
                await writer.drain()
                if out is _BAD:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
