"""Operator core benchmarks (issue 2): start-up, hot reload, crash → healthy vs supervisord,
idle CPU and RSS. Run: python3 bench/bench_operator.py [--quick]"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _common import ROOT, free_port, summary, tree_with, wait_http, write_result

TOKEN = "bench-token"


class Op:
    def __init__(self, tmp: Path) -> None:
        self.api = free_port()
        self.ports = {"nexus": free_port(), "robot": free_port()}
        self.root = tree_with(tmp / "root", self.ports, self.api)
        # isolated crashes: health proven for 1 s resets the crash back-off (policy data)
        base = self.root / "policies" / "base.yaml"
        base.write_text(base.read_text().replace("healthy_reset_seconds: 60",
                                                 "healthy_reset_seconds: 1"))
        # ten deliberate crashes in a row must not trip the crash-loop budget (policy data)
        heal = self.root / "policies" / "healing.yaml"
        heal.write_text(heal.read_text().replace(
            "restart_budget: {max_restarts: 5,", "restart_budget: {max_restarts: 100,"))
        self.data = tmp / "data"
        self.url = f"http://127.0.0.1:{self.api}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Seconds from exec to API answering and both sample services healthy."""
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controllers.cli", "run", "--root", str(self.root),
             "--data-dir", str(self.data)], cwd=ROOT,
            env={**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/healthz")
        for p in self.ports.values():
            wait_http(f"http://127.0.0.1:{p}/health")
        return time.perf_counter() - t0

    def status(self) -> dict:
        return httpx.get(self.url + "/api/reconcile/status", timeout=5).json()

    def pid(self, name: str) -> int | None:
        for r in self.status()["controllers"]["services"]["resources"]:
            if r["name"] == name:
                return r["details"]["pid"]
        return None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def bench_startup(n: int) -> list[float]:
    times = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            op = Op(Path(tmp))
            try:
                times.append(op.start())
            finally:
                op.stop()
    return times


def bench_reload(op: Op, n: int) -> list[float]:
    f = op.root / "desired_state" / "robot.yaml"
    base = f.read_text()
    times = []
    with httpx.Client(base_url=op.url, timeout=5) as c:
        for i in range(n):
            gen = c.get("/api/desired-state").json()["generation"]
            t0 = time.perf_counter()
            f.write_text(base.replace("labels: {tier: sensors}", f"labels: {{tier: s{i}}}"))
            while c.get("/api/desired-state").json()["generation"] == gen:
                time.sleep(0.002)
            times.append(time.perf_counter() - t0)
    return times


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def crash_to_healthy(pid_of, port: int, n: int) -> list[float]:
    times = []
    url = f"http://127.0.0.1:{port}/health"
    for _ in range(n):
        pid = pid_of()
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        # wait until the old process is gone, then until /health answers again
        while _alive(pid):
            time.sleep(0.001)
        wait_http(url, poll=0.002)
        times.append(time.perf_counter() - t0)
        time.sleep(2.5)  # proven health resets the crash back-off (isolated crashes)
    return times


def bench_supervisord(tmp: Path, n: int) -> list[float]:
    exe = shutil.which("supervisord")
    if exe is None:
        print("supervisord: not installed (apt-get install supervisor) — skipped")
        return []
    port = free_port()
    conf = tmp / "supervisord.conf"
    sock = tmp / "supervisor.sock"
    conf.write_text(f"""[unix_http_server]
file={sock}
[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{sock}
[program:nexus]
command={sys.executable} -m autonomous.sample_stack --name nexus --port {port}
directory={ROOT}
autorestart=true
startsecs=0
startretries=1000
""")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")

        def pid_of() -> int:
            out = subprocess.run(["supervisorctl", "-c", str(conf), "pid", "nexus"],
                                 capture_output=True, text=True)
            return int(out.stdout.strip())

        return crash_to_healthy(pid_of, port, n)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def wait_first_backup(op: Op, timeout: float = 180.0) -> tuple[float, float]:
    """Wait for the scheduled first backup (``desired_state/backups.yaml``:
    ``first_after_seconds``) to be recorded, so the idle window that follows is steady state.
    Returns (seconds waited, operator CPU seconds spent meanwhile)."""
    p = psutil.Process(op.proc.pid)
    c0, t0 = _cpu_s(p), time.perf_counter()
    with httpx.Client(base_url=op.url, timeout=5) as c:
        while time.perf_counter() - t0 < timeout:
            if c.get("/api/resilience/backups").json():
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"no scheduled backup recorded within {timeout:.0f} s")
    time.sleep(2.0)  # let the backup's post-processing (verify, retention) finish
    return time.perf_counter() - t0, _cpu_s(p) - c0


def bench_idle(pid: int, seconds: float) -> tuple[float, float]:
    """CPU % of one core and RSS (MiB) of process ``pid`` over ``seconds``."""
    p = psutil.Process(pid)
    c0 = _cpu_s(p)
    time.sleep(seconds)
    return (_cpu_s(p) - c0) / seconds * 100, p.memory_info().rss / 2**20


def supervisord_idle(tmp: Path, seconds: float) -> float | None:
    """supervisord's own idle CPU % supervising the same sample service (the peer)."""
    exe = shutil.which("supervisord")
    if exe is None:
        return None
    port = free_port()
    conf = tmp / "supervisord-idle.conf"
    conf.write_text(f"""[supervisord]
nodaemon=true
logfile={tmp}/sup-idle.log
pidfile={tmp}/sup-idle.pid
[program:nexus]
command={sys.executable} -m autonomous.sample_stack --name nexus --port {port}
directory={ROOT}
autorestart=true
""")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        time.sleep(1.0)
        return bench_idle(proc.pid, seconds)[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, 10 s idle")
    args = ap.parse_args()
    n_start, n_reload, n_crash, idle = (3, 10, 5, 10) if args.quick else (5, 20, 10, 60)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    st = bench_startup(n_start)
    print(f"start-up to API + both services healthy: {summary(st)}   (target < 3000 ms)")
    with tempfile.TemporaryDirectory() as tmp:
        op = Op(Path(tmp))
        try:
            op.start()
            rl = bench_reload(op, n_reload)
            print(f"hot reload, file written → generation in API: {summary(rl)}   "
                  "(target median < 1000 ms)")
            time.sleep(1.5)
            ours = crash_to_healthy(lambda: op.pid("nexus"), op.ports["nexus"], n_crash)
            waited, spent = wait_first_backup(op)
            cpu, rss = bench_idle(op.proc.pid, idle)
            backup_cpu_s = max(0.0, spent - cpu / 100 * waited)
        finally:
            op.stop()
    with tempfile.TemporaryDirectory() as tmp:
        sup = bench_supervisord(Path(tmp), n_crash)
        sup_idle = supervisord_idle(Path(tmp), idle)
    print("crash (SIGKILL) → /health answering again:")
    print(f"  atlas-autonomous: {summary(ours)}   (target median < 250 ms)")
    if sup:
        print(f"  supervisord     : {summary(sup)}")
        print(f"  speed-up (median): {statistics.median(sup) / statistics.median(ours):.1f}x")
    every = 3600.0  # desired_state/backups.yaml schedule.every_seconds
    print(f"idle operator supervising the sample stack over {idle:.0f} s (steady state, after the "
          f"first scheduled backup): CPU {cpu:.2f} % of one core, RSS {rss:.1f} MiB   "
          "(target <= 0.6 %)")
    if sup_idle is not None:
        print(f"  supervisord supervising the NEXUS sample alone (no probes, no health, no "
              f"telemetry): CPU {sup_idle:.2f} % of one core")
    print(f"  the first scheduled backup cost {backup_cpu_s:.2f} CPU-seconds beyond idle; "
          f"every {every:.0f} s that adds {backup_cpu_s / every * 100:.3f} % of a core")
    write_result("bench_operator", {
        "startup_median_ms": round(statistics.median(st) * 1e3, 1),
        "reload_median_ms": round(statistics.median(rl) * 1e3, 1),
        "crash_to_healthy_median_ms": round(statistics.median(ours) * 1e3, 1),
        "idle_cpu_percent": round(cpu, 2), "idle_rss_mib": round(rss, 1),
        "first_backup_cpu_seconds": round(backup_cpu_s, 3),
    }, {"supervisord_crash_to_healthy_median_ms":
        round(statistics.median(sup) * 1e3, 1) if sup else None,
        "supervisord_idle_cpu_percent": round(sup_idle, 3) if sup_idle is not None else None},
        {"quick": args.quick, "idle_s": idle, "crashes": n_crash, "reloads": n_reload,
         "startups": n_start, "supervisord": "measured" if sup else "not installed"})


if __name__ == "__main__":
    main()
