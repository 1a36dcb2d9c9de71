"""The service step of a DR drill: start a process from the restored tree, wait for health.

The drill command is an argv list (never a shell string) with ``{python}``, ``{restore_dir}``
and ``{port}`` expanded; it runs in its own process group with the restored folder as working
directory and is always stopped (SIGTERM, then SIGKILL) before the step returns. It dies
with the operator (``PR_SET_PDEATHSIG``) through the supervisor's ``spawn_argv``:
``setpriv --pdeathsig KILL`` execs it, so no Python ``preexec_fn`` runs between fork and exec
(that forces a slow fork of the whole operator instead of a vfork).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from autonomous.supervisor.processes import SERVICE_UMASK, spawn_argv

__all__ = ["free_port_from", "run_drill_service"]


def free_port_from(start: int) -> int:
    """The first port at or above ``start`` that loopback can bind."""
    for port in range(start, min(start + 2000, 65536)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {start}..{start + 1999}")


def run_drill_service(drill: dict[str, Any], restore_dir: Path, *,
                      port_start: int) -> dict[str, Any]:
    """Start the drill service and poll its health path; raises when it never gets healthy."""
    port = free_port_from(port_start)
    subs = {"{python}": sys.executable, "{restore_dir}": str(restore_dir), "{port}": str(port)}
    argv, preexec = spawn_argv([_expand(a, subs) for a in drill["command"]],
                               str(restore_dir), dict(os.environ))
    log = restore_dir.parent / "drill-service.log"
    url = f"http://127.0.0.1:{port}{drill['health_path']}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=restore_dir, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=preexec, umask=SERVICE_UMASK)  # dies with the operator
    (restore_dir.parent / "service.pid").write_text(str(proc.pid))
    t0 = time.monotonic()
    try:
        last = _wait_healthy(proc, url, float(drill["timeout_seconds"]))
    finally:
        _stop(proc)
    if last.get("ok"):
        return {"url": url, "ready_seconds": round(time.monotonic() - t0, 3),
                "status_code": last["status_code"], "body": last.get("body")}
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"drill service never became healthy at {url}: {last.get('error')}; "
                       f"output: {tail.strip()[-800:]}")


def _expand(arg: str, subs: dict[str, str]) -> str:
    for k, v in subs.items():
        arg = arg.replace(k, v)
    return arg


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {"error": "not probed yet"}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return {"error": f"process exited with code {proc.returncode}"}
        try:
            r = httpx.get(url, timeout=1.0)
            body: Any = r.json() if "json" in r.headers.get("content-type", "") else r.text[:500]
            if 200 <= r.status_code < 300:
                return {"ok": True, "status_code": r.status_code, "body": body}
            last = {"error": f"HTTP {r.status_code}: {str(body)[:500]}"}
        except httpx.HTTPError as exc:
            last = {"error": f"{type(exc).__name__}: {exc}"}
        time.sleep(0.1)
    return last


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)
