"""Issue 17.6: a broken but valid command never replaces a healthy process. The real services
controller supervises a real sample service on a fixed port while a steady client talks to
it; a desired-state edit to a command that cannot start is refused with the old process kept
(no request lost), a good edit is proved beside it and then rolled in, and
``supervision.rollout.max_unavailable: 1`` keeps stop-then-start."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx

from autonomous.core.clock import SystemClock
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.manager import ControllerManager
from controllers.services import ServicesController
from controllers.services_rollout import Beside, beside

YAML = """apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: x}}
spec:
  command: [{command}]
  port: {port}
  version: "{version}"
  health: {{path: /health, readiness_path: /ready, period_seconds: 0.2, timeout_seconds: 0.5,
           failure_threshold: 2}}
  restart: {{policy: always}}
  stop_grace_seconds: 2
"""
GOOD = '"{{python}}", "-m", "autonomous.sample_stack", "--name", "x", "--port", "{port}"'
BROKEN = '"{{python}}", "-m", "autonomous.no_such_module", "--port", "{port}"'


def _spec(**kw) -> ServiceSpec:
    return ServiceSpec.model_validate({"command": ["app", "--port", "8000"], "port": 8000, **kw})


def test_beside_plans_a_spare_port_a_new_port_or_says_why_not() -> None:
    env = {"PORT": "8000", "A": "1"}
    assert beside(_spec(), env, 8000, 9123, False) == Beside(
        ["app", "--port", "9123"], {"PORT": "9123", "A": "1"}, 9123)
    eq = _spec(command=["app", "--port=8000"])
    assert beside(eq, env, 8000, 9123, False).argv == ["app", "--port=9123"]
    moved = _spec(command=["app", "--port", "8001"], port=8001)
    assert beside(moved, env, 8000, 9123, True) == Beside(["app", "--port", "8001"], env, 8001)
    assert "in use" in beside(moved, env, 8000, 9123, False)
    hidden = _spec(command=["app"])
    assert "not in its argv" in beside(hidden, env, 8000, 9123, True)
    assert beside(_spec(command=["worker"], port=None), {}, None, 9123, True) == \
        Beside(["worker"], {}, None)


class _Steady:
    """GET /api/work every 20 ms from an asyncio task; counts the requests that failed."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/api/work?ms=1"
        self.sent = self.failed = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as c:
            while True:
                self.sent += 1
                try:
                    if (await c.get(self.url)).status_code != 200:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1
                await asyncio.sleep(0.02)

    def __enter__(self) -> _Steady:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _until(cond, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


async def _stack(tmp_path: Path, max_unavailable: int):
    root = copy_default_tree(tmp_path / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        f.unlink()
    port = free_port()
    f = root / "desired_state" / "x.yaml"
    f.write_text(YAML.format(command=GOOD.format(port=port), port=port, version="1"))
    base = root / "policies" / "base.yaml"
    text = base.read_text()
    assert "rollout: {max_unavailable: 0," in text
    base.write_text(text.replace("rollout: {max_unavailable: 0,",
                                 f"rollout: {{max_unavailable: {max_unavailable},"))
    ctx = make_context(tmp_path, root=root, clock=SystemClock())
    assert ctx.desired.current is not None, ctx.desired.error
    ctl = ServicesController(ctx)
    manager = ControllerManager(ctx, [ctl])
    await manager.start()
    facade = ctx.subsystems["services"]
    await _until(lambda: facade.observed().get("x", {}).get("ready"), 15, "x ready")
    return ctx, manager, facade, f, port


def _edit(ctx, f: Path, text: str) -> None:
    f.write_text(text)
    assert ctx.desired.reload() is not None, ctx.desired.error


async def test_broken_command_is_refused_and_the_healthy_process_kept(tmp_path: Path) -> None:
    ctx, manager, facade, f, port = await _stack(tmp_path, 0)
    try:
        old = facade.observed()["x"]["pid"]
        with _Steady(port) as load:
            await asyncio.sleep(0.3)
            _edit(ctx, f, YAML.format(command=BROKEN.format(port=port), port=port, version="2"))
            refused = await _until(lambda: [r for r in facade.revisions("x") if r["blocked"]],
                                   20, "the broken revision refused")
            await asyncio.sleep(0.5)  # the steady client keeps talking to the kept process
        assert facade.observed()["x"]["pid"] == old and facade.observed()["x"]["running"]
        assert load.sent > 10 and load.failed == 0, (load.sent, load.failed)
        [row] = refused
        assert row["generation"] == ctx.desired.current.number
        res = ctx.status.resource("services", "Service", "x")
        assert "refused" in str(res.as_dict()), res.as_dict()
        # the kept revision is what a crash restarts now
        os.kill(old, 9)
        await _until(lambda: (o := facade.observed()["x"])["pid"] != old and o["ready"], 15,
                     "kept revision restarted")

        # a good edit is proved beside the running process, then rolled in
        now = facade.observed()["x"]["pid"]
        _edit(ctx, f, YAML.format(command=GOOD.format(port=port) + ', "--features", "turbo"',
                                  port=port, version="3"))
        await _until(lambda: (o := facade.observed()["x"])["pid"] != now and o["ready"], 20,
                     "good revision rolled in")
        logs = list((ctx.data_dir / "logs" / "revisions").glob("x@*.log"))
        assert len(logs) == 2, logs  # one candidate per new revision
    finally:
        await manager.stop()
        ctx.store.close()


async def test_max_unavailable_1_stops_then_starts(tmp_path: Path) -> None:
    ctx, manager, facade, f, port = await _stack(tmp_path, 1)
    try:
        old = facade.observed()["x"]["pid"]
        _edit(ctx, f, YAML.format(command=BROKEN.format(port=port), port=port, version="2"))
        await _until(lambda: facade.observed()["x"]["pid"] != old, 15, "old replaced")
        assert not (ctx.data_dir / "logs" / "revisions").exists() or \
            not list((ctx.data_dir / "logs" / "revisions").glob("x@*.log"))
        assert not [r for r in facade.revisions("x") if r["blocked"]]
    finally:
        await manager.stop()
        ctx.store.close()


async def test_a_command_that_cannot_even_start_is_refused(tmp_path: Path) -> None:
    ctx, manager, facade, f, port = await _stack(tmp_path, 0)
    try:
        old = facade.observed()["x"]["pid"]
        missing = f'"{tmp_path}/no-such-program", "--port", "{port}"'
        _edit(ctx, f, YAML.format(command=missing, port=port, version="2"))
        await _until(lambda: [r for r in facade.revisions("x") if r["blocked"]], 15, "refused")
        assert facade.observed()["x"]["pid"] == old and facade.observed()["x"]["ready"]
    finally:
        await manager.stop()
        ctx.store.close()
