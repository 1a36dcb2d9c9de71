"""Gateway benchmark: Traefik's overhead beside direct access in the same run, and requests
lost while the gateway itself is restarted.

    python3 bench/bench_gateway.py            # 3000 requests per path
    python3 bench/bench_gateway.py --quick    # 500

The backend is one Python HTTP server in its own process; the client (keep-alive, sequential)
alternates direct and gateway requests so both see the same machine load. Restart: a client
thread sends steady requests to the front while the gateway restarts, two ways in the same run:
stop-then-start (SIGTERM, then a new process: what arrives while it is down is lost — what a
crash costs too) and handover (``Traefik.handover``: the new process binds the same front with
SO_REUSEPORT and serves before the old one is stopped). Every failed request counts as lost.
The result JSON goes to bench/results/bench_gateway.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _common import BACKEND, free_port, pct, wait_http, write_result  # noqa: I001

from autonomous.gateway.config import Backend, Front
from autonomous.gateway.process import Traefik



def overhead(direct: str, front: str, n: int) -> tuple[list[float], list[float]]:
    d: list[float] = []
    g: list[float] = []
    with httpx.Client(timeout=2, trust_env=False) as cd, httpx.Client(timeout=2,
                                                                      trust_env=False) as cg:
        for _ in range(50):  # warm both connections
            cd.get(direct)
            cg.get(front)
        for _ in range(n):
            t0 = time.perf_counter()
            cd.get(direct)
            d.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            cg.get(front)
            g.append(time.perf_counter() - t0)
    return d, g


def restart_loss(gw: Traefik, front: str, handover: bool) -> tuple[Traefik, int, int, float]:
    """Steady load on ``front`` while ``gw`` restarts; (the gateway now serving, requests
    sent, failed, seconds from the restart's start until the new process serves)."""
    stop = threading.Event()
    sent = failed = 0

    def load() -> None:
        nonlocal sent, failed
        with httpx.Client(timeout=1, trust_env=False) as c:
            while not stop.is_set():
                sent += 1
                try:
                    if c.get(front).status_code != 200:
                        failed += 1
                except httpx.HTTPError:
                    failed += 1
                time.sleep(0.002)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    if handover:
        gw = gw.handover(free_port())
    else:
        gw.stop()
        gw.start()
    wait_http(front)
    down = time.perf_counter() - t0
    time.sleep(0.5)
    stop.set()
    t.join()
    return gw, sent, failed, down


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    n = 500 if ap.parse_args().quick else 3000
    port, front_port = free_port(), free_port()
    backend = subprocess.Popen([sys.executable, "-c", BACKEND, str(port)])
    with tempfile.TemporaryDirectory() as tmp:
        gw = Traefik([Front("bench", front_port, (Backend("1", port, 100),), "1")], Path(tmp),
                     free_port())
        try:
            direct, front = f"http://127.0.0.1:{port}/x", f"http://127.0.0.1:{front_port}/x"
            wait_http(direct)
            gw.start()
            wait_http(front)
            d, g = overhead(direct, front, n)
            ms = 1000.0
            print(f"requests per path: {n} (sequential, keep-alive, loopback)")
            print(f"direct   p50 {pct(d, 50) * ms:.3f} ms  p99 {pct(d, 99) * ms:.3f} ms")
            print(f"traefik  p50 {pct(g, 50) * ms:.3f} ms  p99 {pct(g, 99) * ms:.3f} ms")
            print(f"overhead p50 {(pct(g, 50) - pct(d, 50)) * ms:+.3f} ms  "
                  f"p99 {(pct(g, 99) - pct(d, 99)) * ms:+.3f} ms  (bar: ≤ +0.5 ms p50)")
            figures: dict[str, float | int] = {
                "requests_per_path": n,
                "traefik_p50_ms": pct(g, 50) * ms, "traefik_p99_ms": pct(g, 99) * ms,
                "overhead_p50_ms": (pct(g, 50) - pct(d, 50)) * ms,
                "overhead_p99_ms": (pct(g, 99) - pct(d, 99)) * ms}
            for label, key, hand in (("stop then start", "stop_start", False),
                                     ("handover (SO_REUSEPORT)", "handover", True)):
                gw, sent, failed, down = restart_loss(gw, front, hand)
                print(f"gateway restart, {label}: {failed} of {sent} requests lost, restart "
                      f"done, front serving, after {down * ms:.0f} ms")
                figures.update({f"restart_{key}_sent": sent, f"restart_{key}_lost": failed,
                                f"restart_{key}_ms": down * ms})
            write_result("bench_gateway", figures, {"direct_p50_ms": pct(d, 50) * ms,
                                                    "direct_p99_ms": pct(d, 99) * ms},
                         {"quick": n == 500, "client": "httpx keep-alive, sequential"})
        finally:
            gw.stop()
            backend.terminate()
            backend.wait(5)


if __name__ == "__main__":
    main()
