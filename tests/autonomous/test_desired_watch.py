"""The desired-state watch reads, validates and looks up git in a worker thread: the serving
loop only installs the new generation (real files, a real git checkout, watchfiles)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

import autonomous.desired.manager as desired_manager
from autonomous.testing import calm_gates, copy_default_tree, make_context, need_binary


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    need_binary("git", "git")
    root = calm_gates(copy_default_tree(tmp_path / "root"))
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm",
         "tree")
    return root


async def test_watch_reads_and_looks_up_git_off_the_loop(checkout, tmp_path, monkeypatch):
    ctx = make_context(tmp_path, root=checkout)
    first = ctx.desired.current
    assert first is not None and first.commit == _git(checkout, "rev-parse", "HEAD")
    assert first.dirty is False

    threads: list[str] = []
    real = desired_manager.git_state

    def recording(root: Path) -> tuple[str | None, bool | None]:
        threads.append(threading.current_thread().name)
        return real(root)

    monkeypatch.setattr(desired_manager, "git_state", recording)
    stop = asyncio.Event()
    task = asyncio.create_task(ctx.desired.watch(stop, debounce_ms=20, step_ms=20))
    try:
        svc = checkout / "desired_state" / "nexus.yaml"
        for i in range(300):  # an edit made before the watcher is set up is not seen: edit again
            if i % 20 == 0:
                svc.write_text(svc.read_text() + f"\n# edit {i}\n")
            cur = ctx.desired.current
            if cur is not None and cur.number > first.number:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the edit did not become a new generation")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    cur = ctx.desired.current
    assert cur is not None and cur.number > first.number
    assert cur.commit == first.commit and cur.dirty is True  # the edit is not committed
    assert threads and threading.main_thread().name not in threads
    ctx.store.close()


def test_reload_without_preloaded_git_looks_it_up(checkout, tmp_path):
    ctx = make_context(tmp_path, root=checkout, load=False)
    gen = ctx.desired.reload()
    assert gen is not None and gen.commit == _git(checkout, "rev-parse", "HEAD")
    assert gen.dirty is False
    ctx.store.close()
