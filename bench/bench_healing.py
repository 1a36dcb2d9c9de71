"""Self-healing benchmarks: MTTR per fault class (vs supervisord for crashes) and circuit
breaker overhead per call in CLOSED state (vs pybreaker), in the same run.

    python3 bench/bench_healing.py            # 10 injections per fault class
    python3 bench/bench_healing.py --quick    # 3 injections, shorter breaker loops

MTTR is measured from outside: from the injection until the service's /health answers 200
from a new process (crash, hang, memory), or until its non-core features are off (slow, error
→ DEGRADE). Both supervisors run the same sample service with the same probe settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autonomous.core.clock import SystemClock
from autonomous.self_healing.circuit_breaker import CircuitBreaker
from autonomous.testing import copy_default_tree, free_port, make_context
from controllers.features import FeaturesController
from controllers.healing import HealingController
from controllers.manager import ControllerManager
from controllers.services import ServicesController

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import start_supervisord, stop_group, write_result  # noqa: E402

# back-to-back injections would (rightly) trip the restart budget; the bench measures MTTR
BENCH_POLICY = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: bench}
spec:
  mode: growth
  policy:
    supervision:
      healthy_reset_seconds: 1.0
    healing:
      restart_budget: {max_restarts: 1000, window_seconds: 300, healthy_reset_seconds: 5}
      breaker: {failure_threshold: 1000, timeout_seconds: 1, success_threshold: 1,
                failure_rate: null, slow_call_seconds: null}
      service_breaker: {failure_threshold: 3, timeout_seconds: 1, success_threshold: 2,
                        failure_rate: null, slow_call_seconds: 0.25}
      detection: {tick_seconds: 0.2, dependency_timeout_seconds: 0.5,
                  probe_timeout_seconds: 0.5, memory_checks: true}
"""

PROBE = "{path: /health, period_seconds: 0.25, timeout_seconds: 0.5, failure_threshold: 2, " \
        "startup_grace_seconds: 3}"


def service_yaml(port: int) -> str:
    return f"""apiVersion: atlas.autonomous/v1
kind: Service
metadata: {{name: nexus}}
spec:
  command: ["{{python}}", "-m", "autonomous.sample_stack", "--name", "nexus", "--port", "{port}"]
  port: {port}
  core: true
  health: {PROBE}
  stop_grace_seconds: 2
  features: {{endpoint: /features, core: [motion, heartbeat]}}
  resources: {{memory_mb: 90}}
"""


def summary(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"median {statistics.median(xs) * 1000:8.1f} ms   max {max(xs) * 1000:8.1f} ms  (n={len(xs)})"


# -- MTTR ------------------------------------------------------------------------------------------
class Target:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(trust_env=False, timeout=0.5)

    def health_pid(self) -> int | None:
        try:
            r = self.http.get(self.base + "/health")
            return r.json().get("pid") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def planning_off(self) -> bool:
        try:
            return self.http.get(self.base + "/features").json()["features"]["planning"] is False
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def post(self, path: str, body: dict[str, Any] | None = None) -> None:
        self.http.post(self.base + path, json=body or {}, timeout=2)

    async def wait(self, pred: Callable[[], bool], timeout: float) -> float | None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if await asyncio.to_thread(pred):
                return time.perf_counter() - t0
            await asyncio.sleep(0.005)
        return None


async def inject(t: Target, kind: str, pid: int) -> float | None:
    """Inject one fault; seconds until recovered (or mitigated), None on timeout."""
    if kind == "crash":
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
    elif kind == "hang":
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGSTOP)
    elif kind == "memory":
        t0 = time.perf_counter()
        await asyncio.to_thread(t.post, "/fault", {"kind": "memory", "mb_per_s": 500,
                                                  "max_mb": 150})
    else:
        body = {"kind": "slow", "delay_ms": 350} if kind == "slow" else {"kind": "error",
                                                                         "status": 500,
                                                                         "paths": ["/health",
                                                                                   "/api/"]}
        t0 = time.perf_counter()
        await asyncio.to_thread(t.post, "/fault", body)
        got = await t.wait(t.planning_off, 20)
        await asyncio.to_thread(t.post, "/fault/clear")
        await t.wait(lambda: not t.planning_off(), 20)
        return got
    done = await t.wait(lambda: t.health_pid() not in (None, pid), 30)
    return None if done is None else time.perf_counter() - t0


async def mttr_ours(n: int, kinds: list[str]) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-healing-"))
    port = free_port()
    root = copy_default_tree(tmp / "root")
    for f in (root / "desired_state").glob("*.yaml"):
        f.unlink()
    (root / "desired_state" / "nexus.yaml").write_text(service_yaml(port))
    (root / "policies" / "zz_bench.yaml").write_text(BENCH_POLICY)
    ctx = make_context(tmp, root=root, clock=SystemClock())
    ctx.governance.set_mode("growth", actor="bench")
    manager = ControllerManager(ctx, [ServicesController(ctx), FeaturesController(ctx),
                                      HealingController(ctx)])
    await manager.start()
    t = Target(port)
    out: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        await t.wait(lambda: t.health_pid() is not None, 20)
        for kind in kinds:
            for _ in range(n):
                await asyncio.sleep(1.3)  # proven health between injections
                pid = await asyncio.to_thread(t.health_pid)
                if pid is None:
                    await t.wait(lambda: t.health_pid() is not None, 20)
                    pid = await asyncio.to_thread(t.health_pid)
                took = await inject(t, kind, pid)
                if took is not None:
                    out[kind].append(took)
        stats = ctx.subsystems["healing"].stats()["by_type"]
        out["_recorded"] = stats  # type: ignore[assignment]
    finally:
        await manager.stop()
        ctx.store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


async def mttr_supervisord(n: int) -> list[float] | str:
    tmp = Path(tempfile.mkdtemp(prefix="bench-supervisord-"))
    port = free_port()
    proc = start_supervisord(tmp, port)
    if isinstance(proc, str):
        shutil.rmtree(tmp, ignore_errors=True)
        return proc
    t = Target(port)
    out: list[float] = []
    try:
        await t.wait(lambda: t.health_pid() is not None, 20)
        for _ in range(n):
            await asyncio.sleep(1.3)
            pid = await asyncio.to_thread(t.health_pid)
            took = await inject(t, "crash", pid)
            if took is not None:
                out.append(took)
    finally:
        stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- breaker overhead ---------------------------------------------------------------------------------
def _per_call(loop: Callable[[int], None], n: int, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        loop(n)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def breaker_overhead(n: int) -> dict[str, float | str]:
    import pybreaker

    def fn() -> int:
        return 1

    ours = CircuitBreaker("bench", failure_threshold=5, timeout=30, success_threshold=2)
    theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)

    def bare(k: int) -> None:
        for _ in range(k):
            fn()

    def our_loop(k: int) -> None:
        call = ours.call
        for _ in range(k):
            call(fn)

    def their_loop(k: int) -> None:
        call = theirs.call
        for _ in range(k):
            call(fn)

    base = _per_call(bare, n)
    res: dict[str, float | str] = {"bare_ns": base * 1e9,
                                   "ours_sync_ns": (_per_call(our_loop, n) - base) * 1e9,
                                   "pybreaker_sync_ns": (_per_call(their_loop, n) - base) * 1e9}

    async def afn() -> int:
        return 1

    async def abare(k: int) -> None:
        for _ in range(k):
            await afn()

    async def aours(k: int) -> None:
        call = ours.call_async
        for _ in range(k):
            await call(afn)

    def run(coro_loop: Callable[[int], Any]) -> Callable[[int], None]:
        return lambda k: asyncio.run(coro_loop(k))

    abase = _per_call(run(abare), n)
    res["ours_async_ns"] = (_per_call(run(aours), n) - abase) * 1e9
    res["pybreaker_async"] = "n/a: pybreaker's call_async needs tornado (not an asyncio API)"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 injections, shorter loops")
    ap.add_argument("--skip-mttr", action="store_true", help="breaker overhead only")
    args = ap.parse_args()
    n = 3 if args.quick else 10
    calls = 200_000 if args.quick else 1_000_000
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)\n")
    b = breaker_overhead(calls)
    print("circuit breaker overhead per call, CLOSED state (bare call subtracted)")
    print(f"  bare function call           {b['bare_ns']:7.1f} ns")
    print(f"  ATLAS CircuitBreaker  sync   {b['ours_sync_ns']:7.1f} ns   (target < 1000 ns)")
    print(f"  pybreaker             sync   {b['pybreaker_sync_ns']:7.1f} ns")
    print(f"  ATLAS CircuitBreaker  async  {b['ours_async_ns']:7.1f} ns")
    print(f"  pybreaker             async  {b['pybreaker_async']}\n")
    figures: dict[str, float | None] = {"breaker_sync_ns": round(b["ours_sync_ns"], 1),
                                        "breaker_async_ns": round(b["ours_async_ns"], 1)}
    peers: dict[str, float | None] = {"pybreaker_sync_ns": round(b["pybreaker_sync_ns"], 1),
                                      "pybreaker_async_ns": None}
    meta: dict[str, Any] = {"quick": args.quick, "calls": calls, "injections": n,
                            "pybreaker_async": b["pybreaker_async"]}
    if args.skip_mttr:
        write_result("bench_healing", figures, peers, {**meta, "mttr": "skipped (--skip-mttr)"})
        return
    kinds = ["crash", "hang", "memory", "slow", "error"]
    ours = asyncio.run(mttr_ours(n, kinds))
    sup = asyncio.run(mttr_supervisord(n))
    print(f"MTTR per fault class ({n} injections each; injection → healthy new process, or "
          "→ degraded for slow/error)")
    for k in kinds:
        print(f"  ATLAS  {k:7s} {summary(ours[k])}")
    print(f"  supervisord crash   {summary(sup) if isinstance(sup, list) else sup}")
    print("  supervisord hang/memory/slow/error: not detected (no health checks)")
    print("\nrecorded by the healer (detection → verified healthy for verify.stable_seconds):")
    for etype, s in ours.get("_recorded", {}).items():  # type: ignore[union-attr]
        print(f"  {etype:13s} incidents {s['incidents']:3d} healed {s['healed']:3d} "
              f"mttr {s['mttr_s']}")

    def med_ms(xs: list[float]) -> float | None:
        return round(statistics.median(xs) * 1000, 1) if xs else None
    for k in kinds:
        figures[f"mttr_{k}_median_ms"] = med_ms(ours[k])
    peers["supervisord_mttr_crash_median_ms"] = med_ms(sup) if isinstance(sup, list) else None
    for k in kinds[1:]:
        peers[f"supervisord_mttr_{k}_median_ms"] = None  # not detected: no health checks
    write_result("bench_healing", figures, peers,
                 {**meta, "supervisord": sup if isinstance(sup, str) else "measured (crash only; "
                  "hang/memory/slow/error not detected, no health checks)"})


if __name__ == "__main__":
    main()
