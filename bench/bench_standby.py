"""Warm standby benchmark: requests failed and time until the front answers again while the
sample NEXUS is SIGKILLed under steady load, side by side in the same run:

    python3 bench/bench_standby.py            # 20 SIGKILLs per setup
    python3 bench/bench_standby.py --quick    # 5

* operator standby: the real operator (``controllers.cli run``) with NEXUS declaring
  ``traffic`` and ``standby: {instances: 1}``: its services controller runs the active and
  ``nexus~standby-1``, restarts whichever was killed, its gateway controller serves the front
  (Traefik) with the ready standby as a second server behind the retry middleware; the active
  is killed every time (the instance a crash takes down);
* operator no standby: the same operator and Service without ``standby``;
* standby (data plane): two instances run by supervisord behind one Traefik front
  (``Backend.standby_ports``); the instance killed alternates;
* no standby: one supervisord instance behind the same gateway configuration;
* supervisord: one instance run by supervisord (autorestart), requests sent to it directly.

The next kill waits until every instance answers its health check again (and, with the
operator, until the standby is a live server of the front's load balancer, read from
Traefik's API). The operator runs the default policies plus one bench policy
(``BENCH_POLICY``: lines of the copied tree's policies changed): its owner restarts a killed process at once every time, as
supervisord's autorestart does (the default crash-loop budget would rightly call 20 kills in
a minute a crash loop and stop restarting). The client sends sequential GET
/api/work?ms=1 on a keep-alive connection (timeout 2 s), 2 ms apart. "Answers again": per
kill, 0 when no request failed, else the time from the kill until the first request that
succeeded after the last failure. Result JSON: bench/results/bench_standby.json.

Measured here (20 kills each, 2-core host shared with other sessions): operator standby 0 of
4142 failed (answers again 0 ms); operator without standby 634 of 5171, answers again median
179 ms (max 349); data-plane standby 0 of 1168; no standby (supervisord behind the gateway)
8380 of 9347, median 1109 ms; supervisord 12571 of 13673, median 1122 ms (a restart by
supervisord took about 1 s here; the operator's owner restarts at once, so its no-standby
row is about the sample process's own start).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from _common import (ROOT, free_port, pct, stop_group, tree_with, wait_http,  # noqa: I001
                     write_result)

from autonomous.gateway.config import Backend, Front
from autonomous.gateway.process import Traefik, live_servers
from autonomous.testing import terminate

TOKEN = "bench-standby-token"
# the owner restarts a killed process at once, each time (supervisord's autorestart): these
# lines of the default policies, changed in the bench's copy of the tree
BENCH_POLICY = {
    "base.yaml": [("restart_budget: {max_restarts: 5, window_seconds: 300}",
                   "restart_budget: {max_restarts: 1000, window_seconds: 300}"),
                  ("healthy_reset_seconds: 60", "healthy_reset_seconds: 0.5")],
    "healing.yaml": [("restart_budget: {max_restarts: 5, window_seconds: 300, "
                      "healthy_reset_seconds: 120}",
                      "restart_budget: {max_restarts: 1000, window_seconds: 300, "
                      "healthy_reset_seconds: 0.5}")],
}


def supervisord(tmp: Path, ports: list[int]) -> subprocess.Popen[bytes]:
    exe = shutil.which("supervisord")
    if exe is None:
        raise SystemExit("supervisord not installed (apt-get install -y supervisor)")
    progs = "".join(f"""[program:nexus{i}]
command={sys.executable} -m autonomous.sample_stack --name nexus --port {p}
directory={ROOT}
autorestart=true
startsecs=0
stdout_logfile={tmp}/nexus{i}.log
redirect_stderr=true
""" for i, p in enumerate(ports))
    conf = tmp / "supervisord.conf"
    conf.write_text(f"[supervisord]\nnodaemon=true\nlogfile={tmp}/supervisord.log\n"
                    f"pidfile={tmp}/supervisord.pid\n{progs}")
    return subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def listener_pid(port: int) -> int | None:
    for c in psutil.net_connections("tcp"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


def run(tmp: Path, setup: str, kills: int) -> dict[str, float | int]:
    ports = [free_port(), free_port()] if setup == "standby" else [free_port()]
    sup = supervisord(tmp, ports)
    gw: Traefik | None = None
    records: list[tuple[float, float, bool]] = []
    done = threading.Event()
    try:
        for p in ports:
            wait_http(f"http://127.0.0.1:{p}/health")
        if setup == "supervisord":
            url = f"http://127.0.0.1:{ports[0]}/api/work?ms=1"
        else:
            fport = free_port()
            gw = Traefik([Front("nexus", fport, (Backend("1", ports[0], 100,
                                                          standby_ports=tuple(ports[1:])),),
                                "1")], tmp / "gw", free_port())
            gw.start()
            url = f"http://127.0.0.1:{fport}/api/work?ms=1"

        t = load_thread(url, records, done)
        kill_at: list[float] = []
        for k in range(kills):
            port = ports[k % len(ports)]
            for p in ports:  # every instance back (the previous victim restarted) first
                wait_http(f"http://127.0.0.1:{p}/health")
            time.sleep(0.2)  # steady load before the kill (the load is what is measured)
            pid = listener_pid(port)
            if pid is None:
                raise RuntimeError(f"no process listens on {port}")
            kill_at.append(time.perf_counter())
            os.kill(pid, signal.SIGKILL)
        for p in ports:
            wait_http(f"http://127.0.0.1:{p}/health")
        time.sleep(0.3)
        done.set()
        t.join(10)
    finally:
        done.set()
        if gw is not None:
            gw.stop()
        stop_group(sup)
    return measure(records, kill_at)


def measure(records: list[tuple[float, float, bool]], kill_at: list[float]
            ) -> dict[str, float | int]:
    gaps: list[float] = []
    for i, tk in enumerate(kill_at):
        end = kill_at[i + 1] if i + 1 < len(kill_at) else float("inf")
        win = [r for r in records if tk <= r[1] < end]
        fails = [r for r in win if not r[2]]
        if not fails:
            gaps.append(0.0)
            continue
        after = [r for r in win if r[2] and r[0] >= fails[-1][1]]
        gaps.append((after[0][1] - tk) if after else end - tk)
    failed = sum(1 for r in records if not r[2])
    lat = [r[1] - r[0] for r in records if r[2]]
    return {"sent": len(records), "failed": failed,
            "latency_ms_p50": pct(lat, 50) * 1e3, "latency_ms_p99": pct(lat, 99) * 1e3,
            "latency_ms_max": max(lat) * 1e3, "span_s": records[-1][1] - records[0][0],
            "answers_again_ms_median":
            sorted(gaps)[len(gaps) // 2] * 1e3, "answers_again_ms_max": max(gaps) * 1e3,
            "answers_again_ms_p95": pct(gaps, 95) * 1e3}


def load_thread(url: str, records: list[tuple[float, float, bool]], done: threading.Event
                ) -> threading.Thread:
    def load() -> None:
        with httpx.Client(timeout=2, trust_env=False) as c:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    ok = c.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                records.append((t0, time.perf_counter(), ok))
                time.sleep(0.002)  # paced: a refused request must not spin the client

    t = threading.Thread(target=load)
    t.start()
    return t


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def run_operator(tmp: Path, standby: bool, kills: int) -> dict[str, float | int]:
    port, front, api = free_port(), free_port(), free_port()
    root = tree_with(tmp / "root", {"nexus": port, "nexus-front": front}, api)
    for f in (root / "desired_state").glob("*.yaml"):
        if f.name != "nexus.yaml":
            f.unlink()  # NEXUS alone (robot depends on it; backups, dashboards: not measured)
    nexus = root / "desired_state" / "nexus.yaml"
    text = nexus.read_text()
    if "standby: {instances: 1}" not in text:
        raise RuntimeError("the default NEXUS no longer declares a standby")
    if not standby:
        nexus.write_text(text.replace("  standby: {instances: 1}\n", ""))
    for name, edits in BENCH_POLICY.items():
        f = root / "policies" / name
        pol = f.read_text()
        for old, new in edits:
            if old not in pol:
                raise RuntimeError(f"policies/{name} no longer has {old!r}")
            pol = pol.replace(old, new)
        f.write_text(pol)
    data = tmp / "data"
    log = (tmp / "operator.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "controllers.cli", "run", "--root",
                             str(root), "--data-dir", str(data), "--port", str(api)],
                            stdout=log, stderr=log, cwd=ROOT,
                            env={**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN})
    log.close()
    records: list[tuple[float, float, bool]] = []
    kill_at: list[float] = []
    done = threading.Event()
    t: threading.Thread | None = None
    api_c: httpx.Client | None = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60)
        wait_http(f"http://127.0.0.1:{front}/health", 60)

        def standby_live() -> bool:
            """Every standby the operator runs answers /ready and is a live server of the
            front (one is expected when the Service declares it)."""
            if not standby:
                return True
            ports = standby_ports(proc.pid, port)
            return bool(ports) and all(_ready(q) for q in ports) and \
                _in_balancer(data, ports)

        api_c = httpx.Client(base_url=f"http://127.0.0.1:{api}", trust_env=False, timeout=5,
                             headers={"Authorization": f"Bearer {TOKEN}"})

        def owner_reset() -> bool:
            """The owner's crash back-off of NEXUS is back to 0 (healthy long enough): its
            next restart is immediate, as supervisord's is (status after a reconcile)."""
            try:
                api_c.post("/api/reconcile/services/trigger")
                st = api_c.get("/api/reconcile/status").json()["controllers"]["services"]
                [r] = [r for r in st["resources"] if r["name"] == "nexus"]
                return r["details"].get("crash_count") == 0
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        until(standby_live, 60, "the standby ready and a live server of the front")
        t = load_thread(f"http://127.0.0.1:{front}/api/work?ms=1", records, done)
        for _ in range(kills):
            wait_http(f"http://127.0.0.1:{port}/health", 60)
            until(standby_live, 60, "the standby ready and a live server of the front")
            until(owner_reset, 60, "the owner's crash back-off reset")
            time.sleep(0.2)  # steady load before the kill (the load is what is measured)
            pid = listener_pid(port)
            if pid is None:
                raise RuntimeError(f"no process listens on {port}")
            kill_at.append(time.perf_counter())
            os.kill(pid, signal.SIGKILL)

            def restarted(old: int = pid) -> bool:
                return listener_pid(port) not in (None, old)

            until(restarted, 60, "the owner restarted the active")
        wait_http(f"http://127.0.0.1:{port}/health", 60)
        time.sleep(0.3)
    finally:
        done.set()
        if t is not None:
            t.join(10)
        if api_c is not None:
            api_c.close()
        terminate(proc, 30)
    return measure(records, kill_at)


def standby_ports(operator: int, active: int) -> list[int]:
    """Ports of the operator's sample NEXUS children other than the active's: its standbys."""
    out = []
    for c in psutil.Process(operator).children(recursive=True):
        try:
            cmd = c.cmdline()
        except psutil.Error:
            continue
        if "autonomous.sample_stack" in cmd and "--port" in cmd:
            q = int(cmd[cmd.index("--port") + 1])
            if q != active:
                out.append(q)
    return sorted(out)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=0.5,
                         trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _in_balancer(data: Path, ports: list[int]) -> bool:
    """Every standby port is a server Traefik routes to now (its API: the gateway's metrics
    port is the control entry point in the argv the operator started it with)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].endswith("traefik") and any(str(data) in a for a in cmd):
            ctl = next(a.split("=", 1)[1] for a in cmd if a.startswith(
                "--entryPoints.traefik.address="))
            live = live_servers(ctl) or {}
            urls = {u for servers in live.values() for u in servers}
            return all(f"http://127.0.0.1:{q}" in urls for q in ports)
    return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    kills = 5 if ap.parse_args().quick else 20
    out: dict[str, dict[str, float | int]] = {}
    for setup in ("operator_standby", "operator_no_standby", "standby", "no_standby",
                  "supervisord"):
        with tempfile.TemporaryDirectory() as tmp:
            out[setup] = (run_operator(Path(tmp), setup == "operator_standby", kills)
                          if setup.startswith("operator") else run(Path(tmp), setup, kills))
    print(f"{kills} SIGKILLs per setup, steady sequential load (goal: 0 failed, ≤ 20 ms)")
    print(f"{'setup':<20} {'sent':>6} {'failed':>7} {'answers again: median':>22} {'max':>9}"
          f"  {'ok latency p50':>14} {'p99':>9}")
    for setup, r in out.items():
        print(f"{setup:<20} {r['sent']:>6} {r['failed']:>7} "
              f"{r['answers_again_ms_median']:>19.1f} ms {r['answers_again_ms_max']:>6.1f} ms"
              f"  {r['latency_ms_p50']:>11.1f} ms {r['latency_ms_p99']:>6.1f} ms")
    ours = ("operator_standby", "operator_no_standby", "standby", "no_standby")
    write_result("bench_standby", {f"{k}_{s}": v for s in ours for k, v in out[s].items()},
                 {f"supervisord_{k}": v for k, v in out["supervisord"].items()},
                 {"kills": kills, "client": "httpx keep-alive, sequential, GET /api/work?ms=1",
                  "operator_policy": "defaults with BENCH_POLICY (restart at once, every time)"})

if __name__ == "__main__":
    main()
