"""Benchmark: sample service start-up to first /health answer, and /health latency.

    python3 bench/bench_sample_stack.py [--quick] [--runs N]

Side by side in the same run with the peer ``python -m http.server`` (the standard library's
own server: the floor for a stdlib service). A start is timed from ``Popen`` to the first HTTP
answer on a fresh connection (200 for the sample; any answer for the peer, which has no
/health). Latency is sequential GET /health on one keep-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_answer(port: int, t0: float, want_200: bool, deadline: float = 10.0) -> float:
    while time.perf_counter() - t0 < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.001)
            continue
        with s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
        if head.startswith(b"HTTP/1.") and (not want_200 or head[9:12] == b"200"):
            return time.perf_counter() - t0
    raise RuntimeError(f"nothing answered on :{port} within {deadline} s")


def _argv(which: str, port: int) -> list[str]:
    if which == "sample":
        return [sys.executable, "-m", "autonomous.sample_stack", "--name", "nexus",
                "--port", str(port)]
    return [sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(port)]


def _start_times(which: str, runs: int, cwd: str) -> list[float]:
    out = []
    for _ in range(runs):
        port = _free_port()
        t0 = time.perf_counter()
        p = subprocess.Popen(_argv(which, port), cwd=cwd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            out.append(_first_answer(port, t0, want_200=which == "sample"))
        finally:
            p.terminate()
            p.wait(5)
    return out


def _latencies(which: str, n: int, cwd: str) -> list[float]:
    port = _free_port()
    p = subprocess.Popen(_argv(which, port), cwd=cwd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _first_answer(port, time.perf_counter(), want_200=which == "sample")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.request("GET", "/health")
            conn.getresponse().read()
            out.append(time.perf_counter() - t0)
        conn.close()
        return out
    finally:
        p.terminate()
        p.wait(5)


def _ms(xs: list[float], q: float) -> str:
    xs = sorted(xs)
    return f"{xs[min(len(xs) - 1, int(q * len(xs)))] * 1000:7.1f}"


def main(argv: list[str] | None = None) -> int:
    """Run both measurements for the sample service and the peer; print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 starts, 200 requests")
    ap.add_argument("--runs", type=int, default=None, help="starts per server (default 10)")
    args = ap.parse_args(argv)
    runs = args.runs or (5 if args.quick else 10)
    reqs = 200 if args.quick else 1000
    print(f"host: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"{runs} starts and {reqs} requests each")
    print(f"{'server':<28}{'start p50 ms':>14}{'start min':>10}{'start max':>10}"
          f"{'GET p50 ms':>12}{'GET p99':>9}")
    with tempfile.TemporaryDirectory() as empty:  # the peer serves an empty folder
        for which, label in (("sample", "sample_stack (nexus)"),
                             ("peer", "peer: python -m http.server")):
            st = _start_times(which, runs, empty)
            lat = _latencies(which, reqs, empty)
            print(f"{label:<28}{statistics.median(st) * 1000:14.1f}{min(st) * 1000:10.1f}"
                  f"{max(st) * 1000:10.1f}{_ms(lat, 0.5):>12}{_ms(lat, 0.99):>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
