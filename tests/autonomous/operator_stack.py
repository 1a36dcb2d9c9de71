"""One operator stack for the in-process end-to-end tests: a copy of the default tree whose
desired state holds only the given Services (sample stack processes), the fast test policy,
the real controllers under the real manager on the system clock. ``Stack`` is the handle a test
drives (pids, URLs, waiting on a real condition, faults, the incident history);
``operator_stack`` (tests/conftest.py) builds them and stops every one at teardown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from autonomous.core.clock import SystemClock
from autonomous.testing import copy_default_tree, make_context
from controllers.manager import ControllerManager

__all__ = ["FAST_POLICY", "Stack", "service", "start_stack", "stop_stack"]

FAST_POLICY = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-fast}
spec:
  mode: growth
  policy:
    supervision:
      restart_backoff: {initial_seconds: 0.1, factor: 2, max_seconds: 2, jitter: 0.1}
      healthy_reset_seconds: 0.6
    healing:
      service_breaker:
        failure_threshold: 3
        timeout_seconds: 0.8
        success_threshold: 2
        failure_rate: null
        slow_call_seconds: 0.25
      verify: {timeout_seconds: 8, poll_seconds: 0.05, stable_seconds: 0.3,
               exit_restart_wait_seconds: 1.0}
      restart_budget: {max_restarts: 3, window_seconds: 30, healthy_reset_seconds: 5}
      crashloop:
        backoff: {initial_seconds: 0.3, factor: 2, max_seconds: 1, jitter: 0.1}
        max_attempts: 2
      isolation: {slow_retry_seconds: 60}
      detection: {tick_seconds: 0.1, dependency_timeout_seconds: 0.5,
                  probe_timeout_seconds: 0.5, memory_checks: true}
"""


def service(name: str, port: int, *, extra: tuple[str, ...] = (), version: str = "1",
            core: bool = True, more: str = "") -> str:
    args = ", ".join(f'"{a}"' for a in ("{python}", "-m", "autonomous.sample_stack", "--name",
                                         name, "--port", str(port), *extra))
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: {name}}}
spec:
  command: [{args}]
  port: {port}
  version: "{version}"
  core: {str(core).lower()}
  health: {{path: /health, readiness_path: /ready, period_seconds: 0.2, timeout_seconds: 0.5,
           failure_threshold: 2, startup_grace_seconds: 3}}
  stop_grace_seconds: 2
{more}"""


class Stack:
    def __init__(self, root: Path, ctx: Any, manager: ControllerManager) -> None:
        self.root, self.ctx, self.manager = root, ctx, manager
        self.http = httpx.AsyncClient(trust_env=False, timeout=5)

    @property
    def services(self) -> Any:
        return self.ctx.subsystems["services"]

    @property
    def orch(self) -> Any:
        return self.ctx.subsystems["healing"].orch

    def pid(self, name: str) -> int | None:
        o = self.services.observed().get(name) or {}
        return o.get("pid") if o.get("running") else None

    def url(self, name: str, path: str) -> str:
        spec = self.services.specs()[name]
        return f"http://127.0.0.1:{spec.port}{path}"

    async def until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if asyncio.iscoroutine(got):
                got = await got
            if got:
                return got
            await asyncio.sleep(0.05)
        rows = self.orch.history.list(limit=10) if "healing" in self.ctx.subsystems else []
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; history: "
                             f"{[(r['service'], r['state'], r['rule'], r['attempts']) for r in rows]}")

    async def healthy(self, name: str) -> bool:
        try:
            r = await self.http.get(self.url(name, "/health"), timeout=0.5)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def fault(self, name: str, body: dict[str, Any] | None) -> None:
        path = "/fault" if body is not None else "/fault/clear"
        r = await self.http.post(self.url(name, path), json=body or {})
        assert r.status_code == 200, r.text

    def incident(self, name: str, **match: Any) -> dict[str, Any] | None:
        for row in self.orch.history.list(service=name):
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None

    def assert_recorded(self, row: dict[str, Any]) -> None:
        """The incident's chain is in the graph and its failure in the memory."""
        chain = self.ctx.graph.why(row["graph_node"])
        types = [n["type"] for n in chain]
        assert types[:2] == ["error", "decision"] and types[-1] == "outcome", types
        assert self.orch.memory.get_similar_failures(row["error_signature"]), row


async def start_stack(tmp_path: Path, services: dict[str, str], controllers: Sequence[type],
                      *, extra_policy: str | None = None) -> Stack:
    """The operator on ``services`` (name → Service YAML) with ``controllers`` (classes taking
    the context), started in growth mode."""
    root = copy_default_tree(tmp_path / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        f.unlink()
    for name, text in services.items():
        (root / "desired_state" / f"{name}.yaml").write_text(text)
    (root / "policies" / "zz_test_fast.yaml").write_text(FAST_POLICY)
    if extra_policy:
        (root / "policies" / "zz_zz_test_extra.yaml").write_text(extra_policy)
    ctx = make_context(tmp_path, root=root, clock=SystemClock())
    assert ctx.desired.current is not None, ctx.desired.error
    ctx.governance.set_mode("growth", actor="test")
    manager = ControllerManager(ctx, [cls(ctx) for cls in controllers])
    await manager.start()
    return Stack(root, ctx, manager)


async def stop_stack(stack: Stack) -> None:
    await stack.http.aclose()
    await stack.manager.stop()
    stack.ctx.store.close()
