"""Warm standby benchmark: requests failed and time until the front answers again while the
sample NEXUS is SIGKILLed under steady load, three ways in the same run:

    python3 bench/bench_standby.py            # 20 SIGKILLs per setup
    python3 bench/bench_standby.py --quick    # 5

* standby: two instances behind one Traefik front (``Backend.standby_ports``: one load
  balancer, the retry middleware on connection errors / 502); the instance killed alternates;
* no standby: one instance behind the same gateway configuration;
* supervisord: one instance run by supervisord (autorestart), requests sent to it directly.

In every setup supervisord restarts the killed process (so the three differ only in what
stands in front of it); the next kill waits until it answers its health check again. The
client sends sequential GET /api/work?ms=1 on a keep-alive connection (timeout 2 s), 2 ms
apart. "Answers
again": per kill, 0 when no request failed, else the time from the kill until the first
request that succeeded after the last failure. Scope: the data plane — the operator's
services controller does not run standby instances itself yet (the bench's supervisord does).
Result JSON: bench/results/bench_standby.json.
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
from pathlib import Path

import httpx
import psutil

from _common import ROOT, free_port, pct, stop_group, wait_http, write_result  # noqa: I001

from autonomous.gateway.config import Backend, Front
from autonomous.gateway.process import Traefik


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    kills = 5 if ap.parse_args().quick else 20
    out: dict[str, dict[str, float | int]] = {}
    for setup in ("standby", "no_standby", "supervisord"):
        with tempfile.TemporaryDirectory() as tmp:
            out[setup] = run(Path(tmp), setup, kills)
    print(f"{kills} SIGKILLs per setup, steady sequential load (goal: 0 failed, ≤ 20 ms)")
    print(f"{'setup':<12} {'sent':>6} {'failed':>7} {'answers again: median':>22} {'max':>9}"
          f"  {'ok latency p50':>14} {'p99':>9}")
    for setup, r in out.items():
        print(f"{setup:<12} {r['sent']:>6} {r['failed']:>7} "
              f"{r['answers_again_ms_median']:>19.1f} ms {r['answers_again_ms_max']:>6.1f} ms"
              f"  {r['latency_ms_p50']:>11.1f} ms {r['latency_ms_p99']:>6.1f} ms")
    write_result("bench_standby", {f"{k}_{s}": v for s in ("standby", "no_standby")
                                   for k, v in out[s].items()},
                 {f"supervisord_{k}": v for k, v in out["supervisord"].items()},
                 {"kills": kills, "client": "httpx keep-alive, sequential, GET /api/work?ms=1"})


if __name__ == "__main__":
    main()
