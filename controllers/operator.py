"""The operator process: store, context, controllers, file watcher and the PUSH API in one
asyncio loop. ``Operator(root).run()`` until SIGTERM/SIGINT, then stops every child.

For an existing FastAPI app (the real PUSH), ``Operator.lifespan`` starts and stops the same
machinery inside that app's lifespan after ``include_routes(app, operator.ctx)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.aio import wait_or_timeout
from autonomous.core.clock import Clock, SystemClock, tick_delay
from autonomous.core.errors import ValidationFailed
from autonomous.core.events import EventBus
from autonomous.desired import DesiredStateManager
from autonomous.governance import Approvals, Governance
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.resilience.heap import fix_mmap_threshold
from autonomous.resources.loader import LoadResult, load_tree
from autonomous.status import StatusBoard
from autonomous.store import Store
from controllers.manager import ControllerManager
from controllers.registry import controller_classes

__all__ = ["Operator", "load_token"]

log = logging.getLogger("atlas.operator")


def load_token(data_dir: Path) -> str:
    """``ATLAS_AUTONOMOUS_TOKEN`` or ``<data-dir>/api-token`` (created 0600 on first run)."""
    env = os.environ.get("ATLAS_AUTONOMOUS_TOKEN")
    if env:
        return env
    path = data_dir / "api-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _build_server(ctx: OperatorContext, host: str, port: int) -> Any:
    """The FastAPI app in a uvicorn server without uvicorn's own signal handlers (the operator
    owns SIGTERM/SIGINT). Imported and built here, not at module import: FastAPI and the route
    modules take most of a second to import, and ``serve`` runs this in a worker thread while the
    event loop is already starting the supervised services."""
    import uvicorn

    from autonomous.api.app import create_app

    class _Server(uvicorn.Server):
        _exit: asyncio.Event | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

        async def main_loop(self) -> None:
            """uvicorn's loop wakes ten times a second to look at ``should_exit``; this one
            is woken by ``request_exit`` and otherwise refreshes the Date header once a
            second (``on_tick`` does that on multiples of 10)."""
            self._exit = asyncio.Event()
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 10) % 864000
                # on the one tick grid: the same wake-up as the once-a-second probes
                await wait_or_timeout(self._exit.wait(), tick_delay(ctx.clock, 1.0))

        def request_exit(self) -> None:
            self.should_exit = True
            if self._exit is not None:
                self._exit.set()

    from autonomous.api.http_protocol import CoalescingHttpToolsProtocol

    config = uvicorn.Config(create_app(ctx), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", http=CoalescingHttpToolsProtocol)
    return _Server(config)


def _freeze_startup_heap() -> None:
    """What is built by now (imports, the app, its routes and models, the controllers) lives
    as long as the process: move it out of the collector's generations (``gc.freeze``) so a
    full collection under load scans only what requests create. Measured under 3x load on the
    API: full (gen-2) collections of 130-210 ms every ~7 s before, 6-43 ms after, each one
    stalling every request in flight, CRITICAL included. No ``gc.collect()`` first: that one
    blocked the loop 0.3-1.6 s while the services start (startup garbage frozen with the rest
    is a few MiB at most)."""
    gc.freeze()


def _refuse_open_reads(host: str, authenticated_reads: bool) -> None:
    """A non-loopback listener serves every GET (state, logs, config) to the network: only
    when reads need the token too."""
    if authenticated_reads or _is_loopback(host):
        return
    raise InsecureListen(
        f"refusing to listen on {host}: it is not a loopback address and every GET is "
        "answered without a token; set spec.settings.api.authenticated_reads: true in "
        "config/autonomous.yaml (every request then needs the bearer token, except "
        "spec.settings.api.public_paths) or listen on 127.0.0.1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class InsecureListen(ValueError):
    """A listen address the config does not allow."""


class Operator:
    def __init__(self, root: str | Path = ".", *, data_dir: str | Path | None = None,
                 host: str | None = None, port: int | None = None,
                 clock: Clock | None = None) -> None:
        self.root = Path(root).resolve()
        first = load_tree(self.root)
        if first.tree is None:
            raise ValidationFailed(first.problems)
        cfg = first.tree.config
        self._first: LoadResult | None = first
        self.data_dir = Path(data_dir or self.root / cfg.data_dir).resolve()
        self.host = host or cfg.listen.host
        _refuse_open_reads(self.host, bool(cfg.settings["api"]["authenticated_reads"]))
        self.port = cfg.listen.port if port is None else port
        self.clock = clock or SystemClock()
        self.ctx: OperatorContext | None = None
        self.manager: ControllerManager | None = None
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    # -- assembly ----------------------------------------------------------------------------
    def build(self) -> OperatorContext:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.data_dir / "atlas.db").open()
        bus = EventBus()
        desired = DesiredStateManager(self.root, store, bus, self.clock)
        gov = Governance(store, bus, self.clock,
                         lambda: desired.current.tree.policies if desired.current else None)
        self.ctx = OperatorContext(
            root=self.root, data_dir=self.data_dir, store=store, bus=bus, clock=self.clock,
            desired=desired, governance=gov, approvals=Approvals(store, bus, self.clock),
            graph=KnowledgeGraph(store, self.clock), status=StatusBoard(),
            token=load_token(self.data_dir))
        if self._first is not None:
            desired.reload(self._first)
        self._first = None
        return self.ctx

    def _controllers(self) -> list[Any]:
        assert self.ctx is not None
        cfg = self.ctx.desired.current.tree.config if self.ctx.desired.current else None
        out = []
        for cls in controller_classes():
            settings = cfg.controllers.get(cls.subsystem) if cfg else None
            if settings is not None and not settings.enabled:
                self.ctx.status.controller(cls.name).enabled = False
                continue
            out.append(cls(self.ctx))
        return out

    # -- running -----------------------------------------------------------------------------
    async def start_background(self) -> None:
        """Start controllers and the file watcher (no HTTP server)."""
        ctx = self.ctx or self.build()
        self.manager = ControllerManager(ctx, self._controllers())
        ctx.subsystems["manager"] = self.manager
        await self.manager.start()
        self._jobs_task = asyncio.create_task(ctx.jobs.run_forever(ctx.clock), name="jobs")
        assert ctx.desired.current is not None  # build() put the first generation in force
        cfg = ctx.desired.current.tree.config
        self._watch_task = asyncio.create_task(
            ctx.desired.watch(self._stop, cfg.reload_debounce_ms, cfg.reload_step_ms),
            name="desired-watch")

    async def stop_background(self) -> None:
        self._stop.set()
        jobs = getattr(self, "_jobs_task", None)
        if jobs is not None:
            jobs.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await jobs
        if self.manager is not None:
            await self.manager.stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
        if self.ctx is not None:
            self.ctx.store.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        await self.start_background()
        try:
            yield
        finally:
            await self.stop_background()

    def bind(self) -> socket.socket:
        """Bind the API socket first: a taken port fails before anything is started."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # protocol IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only then (else every response
        # on a kept-alive connection waits ~40 ms for the delayed ACK)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}; choose "
                          "another with --port or spec.listen.port") from None
        self.port = sock.getsockname()[1]
        return sock

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT (or ``request_stop``)."""
        sock = self.bind()
        host = f"[{self.host}]" if ":" in self.host else self.host
        os.environ["ATLAS_AUTONOMOUS_URL"] = f"http://{host}:{self.port}"  # for the children
        ctx = self.build()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start_background()
        # the services are being started by now; build the API off the loop meanwhile
        try:
            server = await asyncio.to_thread(_build_server, ctx, self.host, self.port)
        except BaseException:
            sock.close()
            await self.stop_background()
            raise
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
        _freeze_startup_heap()
        fix_mmap_threshold()  # large transient buffers (backups) leave no resident heap
        self.started.set()
        log.info("ATLAS Autonomous listening on http://%s:%d (data dir %s)", self.host,
                 self.port, self.data_dir)
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait({server_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        server.request_exit()
        with contextlib.suppress(Exception):
            await server_task
        await self.stop_background()
        stop_wait.cancel()

    def request_stop(self) -> None:
        self._stop.set()
