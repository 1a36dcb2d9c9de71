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

The gate is on the health-check path only, never on a request's path. It answers from its
own threads, not the operator's event loop: the rollback wakes the gateway controller, whose
pass (graph records in SQLite, the document) would otherwise hold the answer back (measured
up to 40 ms). An operator stalled longer than the check's timeout takes the candidate out,
which only ever sends traffic to the version that already ran.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["Gate", "parse_path"]


def parse_path(path: str) -> tuple[str, int] | None:
    """``/gate/<front>/<port>`` (``autonomous.gateway.config.gate_path``) → (front,
    candidate port); None for anything else (pure)."""
    parts = path.split("?", 1)[0].split("/")
    if len(parts) != 4 or parts[1] != "gate" or not parts[3].isdigit():
        return None
    return unquote(parts[2]), int(parts[3])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # Traefik's checker holds its keep-alive connection open
    gate: Gate

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: Traefik drops its checker's connection whenever it reloads."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the checker reuses its connection
    timeout = 30  # an idle connection's thread ends

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server: Any = self.server
        code = server.gate.answer(self.path)
        self.send_response_only(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Gate:
    """``is_open(front, port)``: whether the candidate on ``port`` is still published (called
    from the gate's threads: it must only read)."""

    def __init__(self, is_open: Callable[[str, int], bool], host: str = "127.0.0.1") -> None:
        self.is_open = is_open
        self.host = host
        self.port = 0
        # (front, port) → time.perf_counter() of the first 503 answered since the last 200:
        # when Traefik learnt of a closed gate (read by the rollout benchmark)
        self.closed_at: dict[tuple[str, int], float] = {}
        # (front, port) → 503s answered since the last 200: a second one means Traefik has
        # had a whole check interval to act on the first
        self.closed_checks: dict[tuple[str, int], int] = {}
        self._server: _Server | None = None

    async def start(self) -> int:
        srv = _Server((self.host, 0), _Handler)
        srv.gate = self
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2},
                         name="gateway-gate", daemon=True).start()
        self._server = srv
        self.port = int(srv.server_address[1])
        return self.port

    async def stop(self) -> None:
        srv, self._server = self._server, None
        if srv is not None:
            await asyncio.to_thread(srv.shutdown)
            srv.server_close()
        self.port = 0

    def answer(self, path: str) -> int:
        """200 while the candidate ``path`` names is published, 503 once it is not, 404 for
        a path that names none."""
        key = parse_path(path)
        if key is None:
            return 404
        if self.is_open(*key):
            self.forget(key)
            return 200
        self.closed_at.setdefault(key, time.perf_counter())
        self.closed_checks[key] = self.closed_checks.get(key, 0) + 1
        return 503

    def forget(self, key: tuple[str, int]) -> None:
        """A candidate published (again): a later close is a new switch."""
        self.closed_at.pop(key, None)
        self.closed_checks.pop(key, None)
