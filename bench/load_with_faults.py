"""Load with faults: the real operator and the sample stack under a bounded loopback load for
5 minutes while faults are injected into the services; per priority p50/p99 and error rate,
the services' error rate, and the operator's RSS slope over the run.

    python3 bench/load_with_faults.py             # 300 s at 3x the API's measured capacity
    python3 bench/load_with_faults.py --quick     # 60 s
    python3 bench/load_with_faults.py --seconds 120 --overload 2

1. Unloaded: CRITICAL p99 of the API mix alone at a gentle rate (the reference).
2. Capacity: closed-loop requests/s the operator's API serves on this machine for the mix.
3. The run: open-loop (Poisson) arrivals at ``--overload`` x capacity to the API — 10 %
   CRITICAL (``GET /api/reconcile/status``), 20 % HIGH (``/api/health/comprehensive``),
   30 % MEDIUM (``/api/telemetry/alerts``), 40 % LOW (``/api/telemetry/logs``), priority in
   the ``x-atlas-priority`` header — plus 20 req/s to each sample service, while every
   ``--fault-every`` seconds one fault (crash, SIGSTOP hang, slow, 5xx, memory growth, in
   turn) is injected into NEXUS and cleared ``--fault-for`` seconds later. Success = 2xx
   within the client timeout. Everything stays on 127.0.0.1 and stops by itself.

Bars (issue): CRITICAL ≥ 99.9 % successful with p99 ≤ 2x unloaded; RSS slope ≈ 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from fault_campaign import Stack  # noqa: E402

MIX = (("CRITICAL", 0.1, "/api/reconcile/status"), ("HIGH", 0.2, "/api/health/comprehensive"),
       ("MEDIUM", 0.3, "/api/telemetry/alerts"), ("LOW", 0.4, "/api/telemetry/logs?limit=20"))
FAULTS = ("crash", "hang", "slow", "5xx", "memory")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


async def one(client: httpx.AsyncClient, url: str, prio: str | None, timeout: float,
              out: list[tuple[str, bool, float]]) -> None:
    t0 = time.perf_counter()
    ok = False
    try:  # one deadline for the whole request, pool wait included
        r = await asyncio.wait_for(
            client.get(url, headers={"x-atlas-priority": prio} if prio else None),
            timeout)
        ok = 200 <= r.status_code < 300
    except (httpx.HTTPError, TimeoutError):
        ok = False
    out.append((prio or url, ok, time.perf_counter() - t0))


def pick(rng: random.Random) -> tuple[str, str]:
    x = rng.random()
    acc = 0.0
    for prio, share, path in MIX:
        acc += share
        if x < acc:
            return prio, path
    return MIX[-1][0], MIX[-1][2]


async def open_loop(base: str, rate: float, seconds: float, timeout: float, rng: random.Random,
                    out: list[tuple[str, bool, float]], max_inflight: int = 400) -> None:
    limits = httpx.Limits(max_connections=max_inflight, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, trust_env=False, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        end = time.perf_counter() + seconds
        nxt = time.perf_counter()
        while nxt < end:
            nxt += rng.expovariate(rate)
            delay = nxt - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            prio, path = pick(rng)
            if len(tasks) >= max_inflight:  # the generator's own bound: counted as failed
                out.append((prio, False, 0.0))
                continue
            t = asyncio.create_task(one(client, path, prio, timeout, out))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)


async def capacity(base: str, seconds: float, timeout: float, rng: random.Random) -> float:
    """Closed loop, 8 workers: requests/s the API completes for the mix."""
    done = 0
    end = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < end:
            prio, path = pick(rng)
            try:
                await client.get(path, headers={"x-atlas-priority": prio}, timeout=timeout)
                done += 1
            except httpx.HTTPError:
                pass

    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(8)))
    return done / seconds


async def service_load(urls: list[str], seconds: float, out: list[tuple[str, bool, float]]
                       ) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await asyncio.gather(*(one(client, u, None, 1.0, out) for u in urls))
            await asyncio.sleep(0.05)


async def faults(stack: Stack, seconds: float, every: float, hold: float,
                 log: list[str]) -> None:
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() + every < end:
        await asyncio.sleep(every)
        kind = FAULTS[i % len(FAULTS)]
        i += 1
        pid = await asyncio.to_thread(stack.pid, "nexus")
        log.append(f"{time.strftime('%H:%M:%S')} {kind} (pid {pid})")
        if kind == "crash" and pid:
            os.kill(pid, signal.SIGKILL)
            continue
        if kind == "hang" and pid:
            os.kill(pid, signal.SIGSTOP)
        else:
            body = {"slow": {"kind": "slow", "delay_ms": 600},
                    "5xx": {"kind": "error", "status": 500, "rate": 1.0},
                    "memory": {"kind": "memory", "mb_per_s": 100, "max_mb": 600}}[kind]
            await asyncio.to_thread(stack.post_fault, "nexus", body)
        await asyncio.sleep(hold)
        if kind == "hang" and pid:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        else:
            await asyncio.to_thread(stack.post_fault, "nexus", None, True)


async def rss_sampler(pid: int, seconds: float, out: list[tuple[float, float]]) -> None:
    proc = psutil.Process(pid)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        try:
            out.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
        except psutil.NoSuchProcess:
            return
        await asyncio.sleep(1.0)


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of RSS over the second half of the run (after warm-up)."""
    pts = points[len(points) // 2:]
    if len(pts) < 3:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return None if den == 0 else 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def report(title: str, results: list[tuple[str, bool, float]], keys: list[str]) -> None:
    print(title)
    for k in keys:
        rs = [r for r in results if r[0] == k]
        if not rs:
            continue
        oks = [r[2] * 1000 for r in rs if r[1]]
        p50, p99 = pct(oks, 50), pct(oks, 99)
        print(f"  {k:44s} n {len(rs):6d}  success {100 * len(oks) / len(rs):7.3f} %  "
              f"p50 {p50 if p50 is None else round(p50, 1)} ms  "
              f"p99 {p99 if p99 is None else round(p99, 1)} ms")


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-faults-"))
    stack = Stack(tmp)
    rng = random.Random(args.seed)
    try:
        stack.start()
        base = f"http://127.0.0.1:{stack.api_port}"
        unloaded: list[tuple[str, bool, float]] = []
        await open_loop(base, 10, 15 if args.quick else 30, args.timeout, rng, unloaded)
        crit = [r[2] * 1000 for r in unloaded if r[0] == "CRITICAL" and r[1]]
        ref = pct(crit, 99)
        cap = await capacity(base, 10, args.timeout, rng)
        rate = args.overload * cap
        print(f"unloaded CRITICAL p99 {ref if ref is None else round(ref, 1)} ms (n={len(crit)}); "
              f"API capacity {cap:.0f} req/s for the mix; driving {rate:.0f} req/s "
              f"({args.overload}x) for {args.seconds:.0f} s with faults every "
              f"{args.fault_every:.0f} s\n")
        api: list[tuple[str, bool, float]] = []
        svc: list[tuple[str, bool, float]] = []
        rss: list[tuple[float, float]] = []
        flog: list[str] = []
        assert stack.proc is not None
        urls = [stack.url(s, "/api/work?ms=1") for s in ("nexus", "robot")]
        await asyncio.gather(
            open_loop(base, rate, args.seconds, args.timeout, rng, api),
            service_load(urls, args.seconds, svc),
            faults(stack, args.seconds, args.fault_every, args.fault_for, flog),
            rss_sampler(stack.proc.pid, args.seconds, rss))
        report("API under load with faults (per priority):", api, [m[0] for m in MIX])
        report("sample services (20 req/s each, faults injected into nexus):", svc, urls)
        crit_ok = [r for r in api if r[0] == "CRITICAL"]
        succ = 100 * sum(r[1] for r in crit_ok) / max(1, len(crit_ok))
        p99 = pct([r[2] * 1000 for r in crit_ok if r[1]], 99)
        slope = slope_mb_per_min(rss)
        print(f"\nfaults injected: {len(flog)} ({', '.join(f.split()[1] for f in flog)})")
        print(f"operator RSS {rss[0][1]:.0f} → {rss[-1][1]:.0f} MiB; slope over the second "
              f"half {slope if slope is None else round(slope, 2)} MiB/min")
        bar_p99 = None if ref is None else 2 * ref
        print(f"bar: CRITICAL success {succ:.3f} % (≥ 99.9 %), p99 "
              f"{p99 if p99 is None else round(p99, 1)} ms (≤ 2x unloaded = "
              f"{bar_p99 if bar_p99 is None else round(bar_p99, 1)} ms)")
        write_result("load_with_faults", {
            "critical_success_percent": round(succ, 3),
            "critical_p99_ms": None if p99 is None else round(p99, 1),
            "rss_slope_mib_per_min": None if slope is None else round(slope, 3),
            "faults_injected": len(flog), "offered_rps": round(rate),
        }, {"unloaded_critical_p99_ms": None if ref is None else round(ref, 1)},
            {"quick": args.quick, "seconds": args.seconds, "overload": args.overload,
             "api_capacity_rps": round(cap), "faults": flog,
             "peer": "the same operator unloaded, measured first in this run"})
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="60 s")
    ap.add_argument("--overload", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--fault-every", type=float, default=20.0)
    ap.add_argument("--fault-for", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.quick:
        args.seconds = 60.0
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
