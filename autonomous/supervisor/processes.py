"""Child processes of the operator.

Each child runs in its own session (process group) so that stopping it stops everything it
spawned; it gets ``PR_SET_PDEATHSIG`` so it dies if the operator is killed, and its pid is
recorded in the store so that a restarted operator reaps what a killed one left behind.
The death signal is set by util-linux ``setpriv --pdeathsig KILL`` exec'ing the program (see
``spawn_argv``): with no ``preexec_fn`` the child is started by ``vfork`` and the operator's
event loop is not held while a copy of its ~200 MiB address space runs Python code to the
``exec`` (measured 28 ms median, 63 ms max per start on a loaded 2-core host, against 4-5 ms;
100 ms stalls of every API request under load with faults).
stdout and stderr go to ``<log_dir>/<name>.log``. An exit is published on the event bus
(``service.exited``) the moment it happens: restarts are driven by that event, not polling.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import errno
import shutil
import signal
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from autonomous.core.clock import Clock, iso
from autonomous.core.events import EventBus
from autonomous.store import Store

__all__ = ["SERVICE_UMASK", "ProcessInfo", "ProcessSupervisor", "expand_argv", "spawn_argv"]

log = logging.getLogger("atlas.supervisor")

# The umask a service (and a drill copy of one) starts with: the conventional 022, whatever
# the operator's own (``run`` sets 077 so that its data files are private), so a service's
# files are created the way they would be under supervisord or a login shell.
SERVICE_UMASK = 0o022


def expand_argv(argv: list[str]) -> list[str]:
    """``{python}`` → the operator's interpreter. No shell is ever involved."""
    return [a.replace("{python}", sys.executable) for a in argv]


SETPRIV = shutil.which("setpriv")


def _resolve(program: str, cwd: str | None, env: dict[str, str]) -> None:
    """Raise the ``OSError`` an ``exec`` of ``program`` would (no such program, not
    executable): ``setpriv`` execs it, so its failure would otherwise be an exit, not the
    error a start reports (a broken command in the desired state)."""
    if "/" in program:
        path = program if os.path.isabs(program) else os.path.join(cwd or os.getcwd(), program)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def spawn_argv(argv: list[str], cwd: str | None, env: dict[str, str]
               ) -> tuple[list[str], Any]:
    """The argv to start and the ``preexec_fn`` (None) so that the child gets
    ``PR_SET_PDEATHSIG``: ``setpriv --pdeathsig KILL -- argv`` (util-linux; the pid and the
    process are the program's once setpriv has exec'd it), else the in-child ``prctl`` (a
    fork, not a vfork). Raises the ``OSError`` of an unknown or non-executable program."""
    argv = expand_argv(argv)
    if SETPRIV is None:
        return argv, _set_pdeathsig
    _resolve(argv[0], cwd, env)
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv], None


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class ProcessInfo:
    name: str
    pid: int
    argv: list[str]
    spec_hash: str
    started_at: float
    started_mono: float
    returncode: int | None = None
    exited_at: float | None = None
    exited_mono: float | None = None
    stopping: bool = False
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.returncode is None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "argv": self.argv, "spec_hash": self.spec_hash,
                "started_at": iso(self.started_at), "running": self.running,
                "returncode": self.returncode, "exited_at": iso(self.exited_at)}


class ProcessSupervisor:
    def __init__(self, store: Store, bus: EventBus, clock: Clock, log_dir: Path, *,
                 topic: str = "service") -> None:
        """``topic``: the prefix of the events published (``<topic>.started``,
        ``<topic>.exited``); processes that are not declared services (a revision proved
        beside the running one) use their own, so nothing takes them for a service."""
        self.store = store
        self.bus = bus
        self.clock = clock
        self.topic = topic
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, ProcessInfo] = {}
        self._waiters: dict[str, asyncio.Task[None]] = {}
        self._starting: set[str] = set()

    # -- start / stop ------------------------------------------------------------------------
    async def start(self, name: str, argv: list[str], *, cwd: Path | None = None,
                    env: dict[str, str] | None = None, spec_hash: str = "") -> ProcessInfo:
        current = self.procs.get(name)
        if current is not None and current.running:
            raise RuntimeError(f"service {name!r} is already running (pid {current.pid}); "
                               "stop it first")
        if name in self._starting:
            raise RuntimeError(f"service {name!r} is being started by another caller")
        self._starting.add(name)
        try:
            return await self._spawn(name, argv, cwd=cwd, env=env, spec_hash=spec_hash)
        finally:
            self._starting.discard(name)

    async def _spawn(self, name: str, argv: list[str], *, cwd: Path | None,
                     env: dict[str, str] | None, spec_hash: str) -> ProcessInfo:
        full_env = {**os.environ, **(env or {}), "ATLAS_SERVICE_NAME": name,
                    "PYTHONUNBUFFERED": "1"}
        logf = open(self.log_path(name), "ab", buffering=0)  # noqa: SIM115 - child owns a dup
        try:
            logf.write(f"--- {iso(self.clock.now())} starting {name}: {argv}\n".encode())
            where = str(cwd) if cwd else None
            run, preexec = spawn_argv(argv, where, full_env)
            proc = await asyncio.create_subprocess_exec(
                *run, cwd=where, env=full_env, stdin=asyncio.subprocess.DEVNULL, stdout=logf,
                stderr=logf, start_new_session=True, preexec_fn=preexec, umask=SERVICE_UMASK)
        finally:
            logf.close()
        info = ProcessInfo(name, proc.pid, list(argv), spec_hash, self.clock.now(),
                           self.clock.monotonic(), proc=proc)
        self.procs[name] = info
        self._record(info)
        self._waiters[name] = asyncio.create_task(self._wait(info), name=f"wait-{name}")
        self.bus.publish(f"{self.topic}.started", service=name, pid=proc.pid)
        log.info("started %s (pid %d)", name, proc.pid)
        return info

    async def _wait(self, info: ProcessInfo) -> None:
        assert info.proc is not None
        code = await info.proc.wait()
        info.returncode = code
        info.exited_at = self.clock.now()
        info.exited_mono = self.clock.monotonic()
        self.store.execute("DELETE FROM supervised_processes WHERE service=? AND pid=?",
                           (info.name, info.pid))
        log.info("%s (pid %d) exited with %s", info.name, info.pid, code)
        self.bus.publish(f"{self.topic}.exited", service=info.name, pid=info.pid,
                         returncode=code, expected=info.stopping)

    async def stop(self, name: str, grace: float) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds. Returns the exit code."""
        info = self.procs.get(name)
        if info is None or not info.running:
            return info.returncode if info else None
        info.stopping = True
        self._signal_group(info.pid, signal.SIGTERM)
        # a stopped (SIGSTOP) process cannot handle SIGTERM until continued
        self._signal_group(info.pid, signal.SIGCONT)
        waiter = self._waiters.get(name)
        if waiter is not None:
            done, _ = await asyncio.wait({waiter}, timeout=grace)
            if not done:
                log.warning("%s did not stop within %.1fs: SIGKILL", name, grace)
                self._signal_group(info.pid, signal.SIGKILL)
                await asyncio.wait({waiter})
        self._kill_leftovers(info.pid)
        return info.returncode

    async def stop_all(self, grace_for: dict[str, float], order: list[str] | None = None) -> None:
        """Stop every running child (in ``order`` first, the rest in parallel)."""
        names = [n for n in (order or []) if n in self.procs]
        for n in names:
            await self.stop(n, grace_for.get(n, 5.0))
        rest = [n for n, p in self.procs.items() if p.running and n not in names]
        await asyncio.gather(*(self.stop(n, grace_for.get(n, 5.0)) for n in rest))

    def signal(self, name: str, sig: int) -> None:
        info = self.procs.get(name)
        if info is None or not info.running:
            raise LookupError(f"service {name!r} is not running")
        os.kill(info.pid, sig)

    # -- queries -----------------------------------------------------------------------------
    def get(self, name: str) -> ProcessInfo | None:
        return self.procs.get(name)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log_tail(self, name: str, lines: int = 50) -> list[str]:
        path = self.log_path(name)
        if not path.exists():
            return []
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            tail = f.read().decode("utf-8", "replace").splitlines()
        return list(deque(tail, maxlen=lines))

    def memory_rss(self, name: str) -> int | None:
        info = self.procs.get(name)
        if info is None or not info.running:
            return None
        try:
            return psutil.Process(info.pid).memory_info().rss
        except psutil.Error:
            return None

    # -- orphans -----------------------------------------------------------------------------
    def _record(self, info: ProcessInfo) -> None:
        try:
            ctime = psutil.Process(info.pid).create_time()
        except psutil.Error:
            ctime = 0.0
        self.store.execute("INSERT OR REPLACE INTO supervised_processes(service, pid, "
                           "create_time, started_at, spec_hash) VALUES (?, ?, ?, ?, ?)",
                           (info.name, info.pid, ctime, info.started_at, info.spec_hash))

    def recorded(self) -> list[dict[str, Any]]:
        """Processes recorded as running (by this or another operator process), still alive."""
        out = []
        for row in self.store.query("SELECT * FROM supervised_processes"):
            try:
                alive = abs(psutil.Process(row["pid"]).create_time() - row["create_time"]) < 0.5
            except psutil.Error:
                alive = False
            if alive:
                out.append(dict(row))
        return out

    def reap_stale(self) -> list[int]:
        """Kill process groups a previous (killed) operator left behind. Returns their pids."""
        killed = []
        for row in self.store.query("SELECT service, pid, create_time FROM supervised_processes"):
            try:
                p = psutil.Process(row["pid"])
                if abs(p.create_time() - row["create_time"]) < 0.5:
                    self._signal_group(row["pid"], signal.SIGKILL)
                    killed.append(row["pid"])
            except psutil.Error:
                pass
        self.store.execute("DELETE FROM supervised_processes")
        return killed

    @staticmethod
    def _signal_group(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    @staticmethod
    def _kill_leftovers(pgid: int) -> None:
        """Anything still in the group after the leader exited gets SIGKILL."""
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
