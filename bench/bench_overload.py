"""Overload benchmark: PUSH driven at about 3x its capacity with a mix of priorities, in the
same run without admission control, with it and no slot reserved for CRITICAL, and with it and
``--critical-reserved`` in-flight slots only CRITICAL may use (policy
``concurrency.critical_reserved``).

The server is the real operator app (``create_app``) in its own process (uvicorn), with one
work route whose capacity is bounded like a model backend: ``slots`` concurrent calls of
``service_ms`` each (capacity = slots / service time). The load generator (this process) sends
open-loop arrivals (Poisson) at ``--overload`` x capacity over raw loopback HTTP, 10 % CRITICAL,
20 % HIGH, 30 % MEDIUM, 40 % LOW (header ``x-atlas-priority``), each with a client timeout.
Success = HTTP 200 within the timeout. Printed per priority: success rate, p50 / p99 latency
of successes, 429s, and the unloaded CRITICAL p99 measured first.

    python3 bench/bench_overload.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_result  # noqa: E402

MIX = (("CRITICAL", 0.1), ("HIGH", 0.2), ("MEDIUM", 0.3), ("LOW", 0.4))
BENCH_POLICY = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: bench-overload}
spec:
  mode: governed
  policy:
    resilience:
      concurrency: {initial: 4, min: 2, max: 64, critical_reserved: CRITICAL_RESERVED}
      aimd: {target_latency_ms: 65, increase: 1, decrease_factor: 0.8, interval_seconds: 0.5,
             min_samples: 20}
"""


# -- server ------------------------------------------------------------------------------------
def serve(port: int, admission_on: bool, slots: int, service_ms: float, reserved: int) -> None:
    import uvicorn

    from autonomous.api.app import create_app
    from autonomous.core.clock import SystemClock
    from autonomous.resilience import admission
    from autonomous.testing import make_context

    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-overload-"))
    from autonomous.testing import copy_default_tree

    root = copy_default_tree(tmp / "root")
    (root / "policies" / "zz_bench.yaml").write_text(
        BENCH_POLICY.replace("CRITICAL_RESERVED", str(reserved)))
    ctx = make_context(tmp, root=root, clock=SystemClock())
    app = create_app(ctx)  # the factory installs admission control on every app
    if admission_on:
        admission.install(app, ctx)
    else:  # the peer: the same app and load with the admission middleware taken out
        app.user_middleware = [m for m in app.user_middleware
                               if m.cls is not admission.AdmissionMiddleware]
    backend = asyncio.Semaphore(slots)

    @app.get("/bench/work")
    async def work() -> dict:
        async with backend:
            await asyncio.sleep(service_ms / 1000)
        return {"ok": True}

    @app.get("/bench/limit")
    async def limit() -> dict:
        adm = ctx.subsystems.get("admission") if admission_on else None
        return {"limit": adm.throttler.limit if adm else None,
                "changes": [c["to"] for c in adm.throttler.adjustments] if adm else []}

    @app.get("/bench/ping")
    async def ping() -> dict:
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


# -- load --------------------------------------------------------------------------------------
async def one(port: int, prio: str, timeout: float, path: str = "/bench/work"
              ) -> tuple[str, int, float]:
    t0 = time.perf_counter()
    try:
        status = await asyncio.wait_for(_get(port, prio, path), timeout)
    except (TimeoutError, OSError):
        status = 0
    return prio, status, time.perf_counter() - t0


async def _get(port: int, prio: str, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nx-atlas-priority: {prio}\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    finally:
        writer.close()


async def drive(port: int, rate: float, seconds: float, timeout: float, mix=MIX,
                seed: int = 1) -> list[tuple[str, int, float]]:
    rng = random.Random(seed)
    names, weights = zip(*mix)
    tasks = []
    t_end = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while next_at < t_end:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        prio = rng.choices(names, weights)[0]
        tasks.append(asyncio.create_task(one(port, prio, timeout)))
        next_at += rng.expovariate(rate)
    return await asyncio.gather(*tasks)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def summarise(results: list[tuple[str, int, float]]) -> dict[str, dict]:
    out = {}
    for name, _ in MIX:
        mine = [r for r in results if r[0] == name]
        ok = [lat for _, st, lat in mine if st == 200]
        out[name] = {"sent": len(mine), "success": len(ok) / len(mine) if mine else None,
                     "p50": pct(ok, 50), "p99": pct(ok, 99),
                     "shed_429": sum(1 for _, st, _ in mine if st == 429),
                     "timeouts": sum(1 for _, st, _ in mine if st == 0)}
    return out


# -- one configuration -------------------------------------------------------------------------
async def measure(admission_on: bool, args: argparse.Namespace, reserved: int = 0) -> dict:
    from autonomous.testing import free_port

    port = free_port()
    argv = [sys.executable, __file__, "--serve", "--port", str(port), "--slots",
            str(args.slots), "--service-ms", str(args.service_ms), "--critical-reserved",
            str(reserved)]
    argv += ["--admission"] if admission_on else []
    # started once before the load, so a blocking spawn is fine here
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,  # noqa: ASYNC220
                            stderr=subprocess.DEVNULL)
    try:
        await _ready(port)
        capacity = args.slots / (args.service_ms / 1000)
        await drive(port, capacity * 0.15, 1.0, args.timeout, mix=(("CRITICAL", 1.0),))  # warm
        base = await drive(port, capacity * 0.15, args.warm, args.timeout,
                           mix=(("CRITICAL", 1.0),))
        unloaded = pct([lat for _, st, lat in base if st == 200], 99)
        loaded = await drive(port, capacity * args.overload, args.seconds, args.timeout)
        limit = await _json(port, "/bench/limit")
        return {"unloaded_p99": unloaded, "capacity": capacity, "per": summarise(loaded),
                "limit": limit}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # graceful shutdown stuck on the backlog
            proc.kill()
            proc.wait(10)


async def _json(port: int, path: str) -> dict:
    import json

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nx-atlas-priority: CRITICAL\r\n"
                 "Connection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


async def _ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, status, _ = await one(port, "CRITICAL", 1.0, "/bench/ping")
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("bench server did not start")


def report(without: dict, shared: dict, with_: dict, args: argparse.Namespace) -> None:
    print(f"capacity {with_['capacity']:.0f} req/s ({args.slots} slots x {args.service_ms:g} ms);"
          f" offered {args.overload:g}x = {with_['capacity'] * args.overload:.0f} req/s for "
          f"{args.seconds:g} s; client timeout {args.timeout:g} s; {os.cpu_count()} cores")
    runs = [("no admission control", without),
            ("admission control, no slot reserved for CRITICAL", shared),
            (f"admission control, {args.critical_reserved} in-flight slots reserved for CRITICAL",
             with_)]
    for label, r in runs:
        up = r["unloaded_p99"]
        lim = r["limit"]
        adaptive = (f"; AIMD in-flight limit now {lim['limit']}, last changes "
                    f"{lim['changes'][-8:]}" if lim.get("limit") else "")
        print(f"\n{label}: unloaded CRITICAL p99 {_ms(up)}{adaptive}")
        print(f"  {'priority':10}{'sent':>6}{'success':>9}{'p50':>9}{'p99':>9}{'429':>6}"
              f"{'timeout':>9}")
        for name, s in r["per"].items():
            succ = f"{100 * s['success']:.1f}%" if s["success"] is not None else "n/a"
            print(f"  {name:10}{s['sent']:>6}{succ:>9}{_ms(s['p99'] and s['p50']):>9}"
                  f"{_ms(s['p99']):>9}{s['shed_429']:>6}{s['timeouts']:>9}")
    c, up = with_["per"]["CRITICAL"], with_["unloaded_p99"]
    target = c["success"] is not None and c["success"] >= 0.99 and c["p99"] is not None \
        and up is not None and c["p99"] < 2 * up
    print(f"\ntarget (CRITICAL >= 99 % success, p99 < 2x unloaded p99 {_ms(up)}): "
          f"{'met' if target else 'NOT met'}; LOW shed first: "
          f"{with_['per']['LOW']['shed_429'] >= with_['per']['HIGH']['shed_429']}")


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.0f}ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--admission", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--service-ms", type=float, default=50.0)
    ap.add_argument("--overload", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--critical-reserved", type=int, default=3,
                    help="policy concurrency.critical_reserved of the admission run")
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.admission, args.slots, args.service_ms, args.critical_reserved)
        return 0
    args.seconds = args.seconds or (6.0 if args.quick else 20.0)
    args.warm = 4.0 if args.quick else 10.0
    without = asyncio.run(measure(False, args))
    shared = asyncio.run(measure(True, args, 0))
    with_ = asyncio.run(measure(True, args, args.critical_reserved))
    report(without, shared, with_, args)

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    def crit(r: dict, prefix: str) -> dict[str, float | None]:
        c = r["per"]["CRITICAL"]
        succ = c["success"]
        return {f"{prefix}p99_ms": ms(c["p99"]),
                f"{prefix}success": None if succ is None else round(succ, 4)}
    write_result("bench_overload",
                 {**crit(with_, ""), "unloaded_p99_ms": ms(with_["unloaded_p99"]),
                  "low_shed_429": with_["per"]["LOW"]["shed_429"],
                  "high_shed_429": with_["per"]["HIGH"]["shed_429"]},
                 {**crit(without, "no_admission_"), **crit(shared, "no_reserved_slot_")},
                 {"quick": args.quick, "capacity_rps": with_["capacity"],
                  "overload": args.overload, "seconds": args.seconds, "slots": args.slots,
                  "critical_reserved": args.critical_reserved, "priority": "CRITICAL"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
