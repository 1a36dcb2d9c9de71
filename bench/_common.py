"""Helpers shared by the benchmarks: free ports, temp trees, waiting on HTTP, percentiles."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import json
from collections.abc import Mapping
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autonomous.testing import copy_default_tree, free_port  # noqa: E402

__all__ = ["BACKEND", "ROOT", "copy_default_tree", "free_port", "git_commit", "pct", "results_dir",
           "start_supervisord", "stop_group", "summary", "tree_with", "wait_http", "write_result"]

# the machine's load when the bench started (this module is imported at a bench's start)
_LOAD_AT_START = os.getloadavg()


def results_dir() -> Path:
    """Where result files go: $ATLAS_BENCH_RESULTS, else bench/results of the checkout."""
    env = os.environ.get("ATLAS_BENCH_RESULTS")
    return Path(env) if env else ROOT / "bench" / "results"


def git_commit(root: Path = ROOT) -> dict[str, str | bool | None]:
    """HEAD's hash and committer date (ISO 8601) of the checkout and whether tracked files
    differ from it (dirty); None where git cannot say."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout
    try:
        out = git("log", "-1", "--format=%H %cI").split()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
        return {"commit": out[0], "commit_date": out[1], "dirty": dirty}
    except (OSError, subprocess.SubprocessError, IndexError):
        return {"commit": None, "commit_date": None, "dirty": None}


def write_result(name: str, figures: Mapping[str, Any], peers: Mapping[str, Any],
                 meta: Mapping[str, Any] | None = None) -> Path:
    """bench/results/<name>.json (or $ATLAS_BENCH_RESULTS/<name>.json): the machine (cpu count,
    load average at the bench's start and now, python, git commit), the time, our figures and
    the peers' figures measured in the same run. A figure that was not measured is None."""
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "unix_time": time.time(),
        "machine": {"cpu_count": os.cpu_count(), "load_avg_start": list(_LOAD_AT_START),
                    "load_avg_end": list(os.getloadavg()),
                    "python": sys.version.split()[0], **git_commit()},
        "figures": dict(figures), "peers": dict(peers), "meta": dict(meta or {}),
    }
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


# A minimal keep-alive HTTP/1.1 backend (TCP_NODELAY, 200 "ok"), run as
# ``python -c BACKEND PORT``: the same peer for the gateway and rollout benchmarks.
BACKEND = """
import socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def start_supervisord(tmp: Path, port: int) -> subprocess.Popen[bytes] | str:
    """supervisord running the sample NEXUS on ``port`` the way its users run it (autorestart,
    no health checks), in its own session; or why it cannot (not installed)."""
    exe = shutil.which("supervisord")
    if exe is None:
        return "supervisord not installed (apt-get install -y supervisor)"
    conf = tmp / "supervisord.conf"
    conf.write_text(f"""[supervisord]
nodaemon=true
logfile={tmp}/supervisord.log
pidfile={tmp}/supervisord.pid
[unix_http_server]
file={tmp}/supervisor.sock
[program:nexus]
command={sys.executable} -m autonomous.sample_stack --name nexus --port {port}
directory={ROOT}
autorestart=true
startsecs=1
stopsignal=TERM
stdout_logfile={tmp}/nexus.log
redirect_stderr=true
""")
    return subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_http(url: str, timeout: float = 30.0, poll: float = 0.002) -> float:
    """Seconds until ``url`` answers 2xx (busy-polls at ``poll``)."""
    t0 = time.perf_counter()
    with httpx.Client(timeout=0.5, trust_env=False) as c:
        while time.perf_counter() - t0 < timeout:
            try:
                if c.get(url).status_code < 300:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(poll)
    raise TimeoutError(url)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    v = [x * scale for x in values]
    return (f"median {statistics.median(v):.1f} {unit}, p95 {pct(v, 95):.1f} {unit}, "
            f"min {min(v):.1f}, max {max(v):.1f} (n={len(v)})")


def tree_with(root: Path, ports: dict[str, int], api_port: int) -> Path:
    """Default tree with the sample services on the given ports and the API on api_port."""
    copy_default_tree(root)
    defaults = {"nexus": 8000, "robot": 8002}
    fronts = {"nexus": 8100, "robot": 8102}  # the gateway's front ports (spec.traffic)
    for name in defaults:
        f = root / "desired_state" / f"{name}.yaml"
        text = f.read_text()
        text = text.replace(f"traffic: {{port: {fronts[name]},",
                            f"traffic: {{port: {ports.get(f'{name}-front', free_port())},")
        for other, default in defaults.items():
            port = ports.get(other, default)
            text = text.replace(f'"--port", "{default}"', f'"--port", "{port}"')
            text = text.replace(f"port: {default}", f"port: {port}")
            text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
        f.write_text(text)
    cfg = root / "config" / "autonomous.yaml"
    cfg.write_text(cfg.read_text().replace("port: 8791", f"port: {api_port}"))
    return root
