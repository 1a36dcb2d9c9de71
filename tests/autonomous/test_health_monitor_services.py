"""ServiceHealth against a real sample service: SIGSTOP, injected slowness and errors; alone
(its own probes) and beside the real services controller (its probes, none of its own)."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from autonomous.core.clock import FakeClock, SystemClock
from autonomous.health_monitor.service_health import ServiceHealth
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.resources.loader import load_tree
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.health import HealthController
from controllers.manager import ControllerManager
from controllers.services import ServicesController

ROOT = Path(__file__).resolve().parents[2]
POLICY = copy.deepcopy(load_tree(ROOT).tree.policies["governed"]["health"])
POLICY["services"].update(window_seconds=2.0, metrics_interval_seconds=0.2,
                          dependency_interval_seconds=0.5)
PERIOD, THRESHOLD = 0.25, 3


@pytest.fixture
def sample() -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autonomous.sample_stack", "--name", "x",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield proc, port
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _spec(port: int, deps: list[dict] | None = None) -> ServiceSpec:
    return ServiceSpec.model_validate({
        "command": ["x"], "port": port,
        "health": {"path": "/health", "readiness_path": "/ready", "period_seconds": PERIOD,
                   "timeout_seconds": 0.2, "failure_threshold": THRESHOLD,
                   "startup_grace_seconds": 0},
        "dependencies": deps or []})


async def _until(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_sigstopped_service_fails_liveness_in_period_times_threshold(sample) -> None:
    proc, port = sample
    sh = ServiceHealth(SystemClock(), specs=lambda: {"x": _spec(port)}, policy=lambda: POLICY)
    try:
        sh.ensure_running()
        await _until(lambda: sh.service_metrics("x")["live"] is True, 5)
        assert sh.calculate_service_score("x") > 50
        os.kill(proc.pid, signal.SIGSTOP)
        took = await _until(lambda: sh.service_metrics("x")["live"] is False, 5)
        assert took <= PERIOD * (THRESHOLD + 1)
        m = sh.service_metrics("x")
        assert m["consecutive_failures"] >= THRESHOLD and "no answer" in m["last_probe"]["error"]
        assert sh.calculate_service_score("x") == 0.0
        os.kill(proc.pid, signal.SIGCONT)
        await _until(lambda: sh.service_metrics("x")["live"] is True, 5)
    finally:
        await sh.close()


async def test_error_rate_and_latency_rise_under_faults(sample) -> None:
    _, port = sample
    base = f"http://127.0.0.1:{port}"
    sh = ServiceHealth(SystemClock(), specs=lambda: {"x": _spec(port)}, policy=lambda: POLICY)
    try:
        sh.ensure_running()
        await _until(lambda: (sh.service_metrics("x")["probes_in_window"] >= 6
                              and sh.service_metrics("x")["throughput_rps"] is not None), 5)
        before = sh.service_metrics("x")
        assert before["error_rate"] == 0.0 and before["latency_p95_ms"] < 100
        async with httpx.AsyncClient() as c:
            await c.post(f"{base}/fault", json={"kind": "slow", "delay_ms": 120})
            await asyncio.sleep(2.2)  # one full window of slow probes
            slow = sh.service_metrics("x")
            assert slow["latency_p50_ms"] >= 120 > 2 * before["latency_p95_ms"]
            await c.post(f"{base}/fault/clear", json={})
            await c.post(f"{base}/fault", json={"kind": "error", "status": 500, "rate": 1.0})
            await asyncio.sleep(2.2)
            bad = sh.service_metrics("x")
        assert bad["probe_error_rate"] > 0.5 and bad["request_error_rate"] > 0.5
        assert bad["live"] is False and sh.calculate_service_score("x") == 0.0
        kinds = {b["kind"] for b in sh.get_bottlenecks()}
        assert "errors" in kinds
    finally:
        await sh.close()


async def test_dependency_health_http_and_tcp(sample) -> None:
    _, port = sample
    dead = free_port()
    deps = [{"name": "api", "type": "http", "url": f"http://127.0.0.1:{port}/health"},
            {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": dead,
             "timeout_seconds": 0.3}]
    sh = ServiceHealth(SystemClock(), specs=lambda: {"x": _spec(port, deps)},
                       policy=lambda: POLICY)
    try:
        sh.ensure_running()
        await _until(lambda: len(sh.get_dependency_health().get("x", {})) == 2, 5)
        dep = sh.get_dependency_health()["x"]
        assert dep["api"]["online"] is True and dep["api"]["latency_ms"] is not None
        assert dep["db"]["online"] is False and dep["db"]["error"]
        assert any(b["subject"] == "x/db" for b in sh.get_bottlenecks())
        status = await sh.check_service(f"http://127.0.0.1:{dead}/health", timeout=0.5)
        assert not status.online and status.latency is None and status.errors
    finally:
        await sh.close()


SERVICE_YAML = f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{{{name: x}}}}
spec:
  command: ["{{{{python}}}}", "-m", "autonomous.sample_stack", "--name", "x", "--port", "{{port}}"]
  port: {{port}}
  health: {{{{path: /health, readiness_path: /ready, period_seconds: {PERIOD},
           timeout_seconds: 0.2, failure_threshold: {THRESHOLD}, startup_grace_seconds: 0}}}}
  stop_grace_seconds: 2
"""


async def test_with_services_controller_its_probes_are_used_sigstop(tmp_path: Path) -> None:
    root = copy_default_tree(tmp_path / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        f.unlink()
    (root / "desired_state" / "x.yaml").write_text(SERVICE_YAML.format(port=free_port()))
    ctx = make_context(tmp_path, root=root, clock=SystemClock())
    assert ctx.desired.current is not None, ctx.desired.error
    manager = ControllerManager(ctx, [ServicesController(ctx), HealthController(ctx)])
    await manager.start()
    try:
        sh = ctx.subsystems["health"].services
        await _until(lambda: sh.service_metrics("x")["live"] is True
                     and sh.service_metrics("x")["ready"] is True, 15)
        m = sh.service_metrics("x")
        assert m["probe_source"] == "services" and m["latency_p95_ms"] is not None
        assert m["uptime_seconds"] is not None
        err_before = m["probe_error_rate"]  # grace 0: start-up refusals count
        pid = ctx.subsystems["services"].observed()["x"]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            took = await _until(lambda: sh.service_metrics("x")["live"] is False, 5)
            m = sh.service_metrics("x")
        finally:
            os.kill(pid, signal.SIGCONT)
        assert took <= PERIOD * (THRESHOLD + 1)
        assert m["consecutive_failures"] >= THRESHOLD and "timeout" in m["last_probe"]["error"]
        assert m["probe_error_rate"] > err_before and sh.calculate_service_score("x") == 0.0
        # one way to probe: ServiceHealth sent none of its own
        assert not sh.states["x"].probes and sh.states["x"].state.live is None
    finally:
        await manager.stop()
        ctx.store.close()


def test_figures_from_services_probe_history_startup_failures_excluded() -> None:
    clock = FakeClock()
    now = clock.now()
    spec = _spec(1)
    hist = [{"ok": False, "latency_ms": None, "status_code": None, "error": "refused",
             "ts": now - 9.5}, {"ok": False, "latency_ms": None, "status_code": None,
                                "error": "refused", "ts": now - 9.4}]
    hist += [{"ok": True, "latency_ms": float(ms), "status_code": 200, "error": None,
              "ts": now - 9 + i} for i, ms in enumerate([1, 2, 3, 4, 100])]
    hist += [{"ok": False, "latency_ms": None, "status_code": None, "error": "timeout",
              "ts": now - 1}]
    obs = {"x": {"running": True, "live": True, "ready": False, "consecutive_failures": 1,
                 "started_at": now - 10, "last_probe": hist[-1], "probe_history": hist}}
    sh = ServiceHealth(clock, specs=lambda: {"x": spec}, policy=lambda: POLICY | {
        "services": {**POLICY["services"], "window_seconds": 60}}, observed=lambda: obs)
    m = sh.service_metrics("x")
    assert (m["live"], m["ready"], m["consecutive_failures"]) == (True, False, 1)
    assert m["probe_source"] == "services" and m["uptime_seconds"] == 10
    assert m["probes_in_window"] == 8 and m["probe_error_rate"] == pytest.approx(3 / 8)
    assert m["latency_p50_ms"] == 3 and m["latency_p95_ms"] > 50
    spec.health.startup_grace_seconds = 5  # the two refusals before the first pass: start-up
    m = sh.service_metrics("x")
    assert m["probes_in_window"] == 6 and m["probe_error_rate"] == pytest.approx(1 / 6)
    obs["x"] |= {"running": False, "returncode": -9}
    m = sh.service_metrics("x")
    assert m["live"] is False and "exit code -9" in m["last_probe"]["error"]


def test_request_error_rate_is_bounded_and_null_without_requests() -> None:
    from autonomous.health_monitor.service_figures import request_rates
    more_errors_than_requests = [(0.0, 100.0, 0.0), (10.0, 110.0, 30.0)]
    assert request_rates(more_errors_than_requests, 10.0, 60.0)["error_rate"] == 1.0
    no_requests = [(0.0, 100.0, 5.0), (10.0, 100.0, 5.0)]
    assert request_rates(no_requests, 10.0, 60.0) == {"throughput": 0.0, "error_rate": None}
    one_scrape = [(0.0, 100.0, 5.0)]
    assert request_rates(one_scrape, 10.0, 60.0) == {"throughput": None, "error_rate": None}
