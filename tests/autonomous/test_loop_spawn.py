"""Starting a supervised process keeps the serving loop free: no ``preexec_fn`` (a fork of
the whole operator running Python to the exec) but ``setpriv --pdeathsig KILL`` exec'ing the
program, with the same guarantees — the child dies with the operator, the pid is the
program's, an unknown or non-executable program is an ``OSError`` at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from autonomous.core.clock import SystemClock
from autonomous.core.events import EventBus
from autonomous.store import Store
from autonomous.supervisor.processes import SETPRIV, ProcessSupervisor, spawn_argv
from autonomous.testing import need_binary, terminate, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def supervisor(tmp_path: Path):
    store = Store(tmp_path / "atlas.db").open()
    yield ProcessSupervisor(store, EventBus(), SystemClock(), tmp_path / "logs")
    store.close()


def test_spawn_argv_uses_setpriv_and_no_preexec_fn():
    need_binary("setpriv", "util-linux")
    run, preexec = spawn_argv(["{python}", "-c", "pass"], None, dict(os.environ))
    assert preexec is None  # a vfork: the loop is not held by a copy of the operator
    assert run[:4] == [SETPRIV, "--pdeathsig", "KILL", "--"]
    assert run[4:] == [sys.executable, "-c", "pass"]


@pytest.mark.parametrize("argv, error", [
    (["no-such-program-atlas"], FileNotFoundError),
    (["./missing.sh"], FileNotFoundError),
    (["./not-executable.sh"], PermissionError),
    (["./a-dir"], PermissionError),
])
async def test_unknown_or_not_executable_program_fails_the_start(supervisor, tmp_path, argv,
                                                                 error):
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\n")
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(error):
        await supervisor.start("svc", argv, cwd=tmp_path)
    assert "svc" not in supervisor.procs
    assert supervisor.recorded() == []


async def test_started_process_is_the_program_and_is_stopped(supervisor, tmp_path):
    info = await supervisor.start("svc", ["{python}", "-c", "import time; time.sleep(60)"],
                                  cwd=tmp_path)
    try:
        proc = psutil.Process(info.pid)
        # setpriv exec'd the program: same pid, the program's command line
        wait_for(lambda: proc.cmdline()[:1] == [sys.executable], "setpriv exec'd python")
        assert [r["pid"] for r in supervisor.recorded()] == [info.pid]
    finally:
        code = await supervisor.stop("svc", 5.0)
    assert code is not None and not info.running


def test_child_dies_with_its_operator(tmp_path):
    """A process that starts a child through ProcessSupervisor is SIGKILLed: the child gets
    the death signal (nothing reaps it here: no operator restarts)."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from autonomous.core.clock import SystemClock
        from autonomous.core.events import EventBus
        from autonomous.store import Store
        from autonomous.supervisor.processes import ProcessSupervisor

        async def main():
            store = Store({str(tmp_path / 'atlas.db')!r}).open()
            sup = ProcessSupervisor(store, EventBus(), SystemClock(), {str(tmp_path)!r})
            info = await sup.start("child", ["sleep", "120"])
            print(info.pid, flush=True)
            await asyncio.sleep(120)

        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        proc = psutil.Process(child)
        wait_for(lambda: proc.cmdline()[:1] == ["sleep"], "child exec'd sleep")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE,
                 "child killed with its parent", timeout=10)
    finally:
        terminate(parent)
        if parent.stdout is not None:
            parent.stdout.close()

