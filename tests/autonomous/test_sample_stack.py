"""The sample ATLAS stack: real service processes on free ports, broken on purpose from outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autonomous.sample_stack.faults import FaultError, validate
from autonomous.sample_stack.logs import parse_traceparent
from autonomous.testing import default_root, free_port

ROOT = default_root()


class Svc:
    """One running sample service: its process, base URL and log file."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=5)

    def get(self, path: str, **kw: object) -> httpx.Response:
        return self.http.get(path, **kw)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, **kw: object) -> httpx.Response:
        return self.http.post(path, json=body, **kw)  # type: ignore[arg-type]

    def put(self, path: str, body: object) -> httpx.Response:
        return self.http.put(path, json=body)

    def log_lines(self) -> list[dict]:
        return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]

    def metrics(self) -> dict[str, list]:
        text = self.get("/metrics").text
        return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _spawn(tmp: Path, name: str, port: int, extra: list[str], env: dict[str, str] | None,
           ) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"{name}-{port}-{time.monotonic_ns()}.log"
    argv = [sys.executable, "-m", "autonomous.sample_stack", "--name", name, "--port", str(port)]
    full_env = {**os.environ, **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv + extra, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=full_env)
    return proc, log


def _wait_health(svc: Svc, timeout: float = 10) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if svc.proc.poll() is not None:
            raise AssertionError(f"exited {svc.proc.returncode}: {svc.log.read_text()}")
        try:
            if svc.http.get("/health", timeout=1).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.002)
    raise AssertionError(f"no /health 200 within {timeout} s: {svc.log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)  # in case a test left it SIGSTOPped
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Svc]]:
    """Start services (``start("nexus", "--flag", env={...}, wait=True)``); all stopped after."""
    started: list[Svc] = []

    def _start(name: str, *extra: str, env: dict[str, str] | None = None, wait: bool = True,
               port: int | None = None) -> Svc:
        port = port or free_port()
        proc, log = _spawn(tmp_path, name, port, list(extra), env)
        svc = Svc(proc, port, log)
        started.append(svc)
        if wait:
            _wait_health(svc)
        return svc

    try:
        yield _start
    finally:
        for svc in started:
            _stop(svc.proc)
            svc.http.close()


@pytest.fixture
def nexus(start: Callable[..., Svc]) -> Svc:
    return start("nexus")


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout, "condition not met in time"
        time.sleep(0.05)


def _sample(samples: list, name: str, **labels: str) -> float:
    return next(s.value for s in samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# ---------------------------------------------------------------- health, ready, metrics, logs

def test_health_ready_and_metrics_parse(nexus: Svc) -> None:
    h = nexus.get("/health").json()
    assert h["status"] == "ok" and h["name"] == "nexus" and h["version"] == "1.0.0"
    assert h["uptime_s"] >= 0 and h["pid"] == nexus.proc.pid
    assert nexus.get("/ready").status_code == 200
    m = nexus.metrics()
    assert _sample(m["sample_http_requests"], "sample_http_requests_total",
                   path="/health", code="200") >= 2  # one from the start-up wait, one above
    hist = m["sample_http_request_duration_seconds"]
    assert _sample(hist, "sample_http_request_duration_seconds_bucket",
                   path="/ready", le="+Inf") == 1
    rss = _sample(m["process_resident_memory_bytes"], "process_resident_memory_bytes")
    assert abs(rss - psutil.Process(nexus.proc.pid).memory_info().rss) < 8 * 2**20
    assert abs(_sample(m["process_start_time_seconds"], "process_start_time_seconds")
               - psutil.Process(nexus.proc.pid).create_time()) < 1.0
    feats = {s.labels["feature"]: s.value for s in m["sample_feature_enabled"]}
    assert feats == {"motion": 1, "heartbeat": 1, "planning": 1}


def test_unknown_path_is_404_and_counted_as_other(nexus: Svc) -> None:
    r = nexus.get("/nope")
    assert r.status_code == 404 and "/nope" in r.json()["error"]
    assert nexus.http.delete("/health").status_code == 405
    assert _sample(nexus.metrics()["sample_http_requests"], "sample_http_requests_total",
                   path="other", code="404") == 1


def test_traceparent_child_echoed_and_json_logs(nexus: Svc) -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = nexus.get("/api/heartbeat", headers={"traceparent": parent})
    child = parse_traceparent(r.headers["traceparent"])
    assert child is not None and child.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    span = r.headers["traceparent"].split("-")[2]
    assert span != "00f067aa0ba902b7"
    line = next(ln for ln in nexus.log_lines() if ln.get("path") == "/api/heartbeat")
    assert {"ts", "level", "logger", "message", "service"} <= set(line)
    assert (line["trace_id"], line["span_id"], line["parent_span_id"], line["service"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", span, "00f067aa0ba902b7", "nexus")
    assert nexus.log_lines()[0]["message"] == "started"


def _probe_lines(svc: Svc) -> list[tuple[str, int, bool]]:
    return [(ln["path"], ln["status"], "trace_id" in ln and "parent_span_id" in ln)
            for ln in svc.log_lines() if ln.get("path") in ("/health", "/ready", "/metrics")]


def test_probes_are_counted_but_only_failed_or_traced_ones_logged(start) -> None:
    nexus = start("nexus")  # waiting for it already sent untraced /health probes
    nexus.get("/ready")
    nexus.get("/metrics")
    assert _probe_lines(nexus) == []
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    nexus.get("/health", headers={"traceparent": parent})
    nexus.post("/fault", {"kind": "error", "status": 503, "rate": 1.0})
    nexus.get("/health")
    assert _probe_lines(nexus) == [("/health", 200, True), ("/health", 503, False)]
    assert _sample(nexus.metrics()["sample_http_requests"], "sample_http_requests_total",
                   path="/health", code="200") >= 2
    loud = start("robot", "--log-probes")
    loud.get("/ready")
    assert ("/ready", 200, False) in _probe_lines(loud)


def test_ready_follows_dependency(start: Callable[..., Svc]) -> None:
    dep_port = free_port()
    robot = start("robot", "--depends-on", f"http://127.0.0.1:{dep_port}/health")
    r = robot.get("/ready")
    assert r.status_code == 503 and "down" in r.json()["reasons"][0]
    nexus = start("nexus", port=dep_port)
    _eventually(lambda: robot.get("/ready").status_code == 200)
    nexus.post("/fault", {"kind": "error"})
    _eventually(lambda: robot.get("/ready").status_code == 503)


def test_ready_503_while_warming_up(start: Callable[..., Svc]) -> None:
    svc = start("nexus", "--ready-delay-ms", "1500")
    r = svc.get("/ready")
    assert r.status_code == 503 and r.json()["reasons"][0].startswith("warming up")
    _eventually(lambda: svc.get("/ready").status_code == 200)


# ---------------------------------------------------------------- faults

def test_crash_fault_exits_with_code(nexus: Svc) -> None:
    r = nexus.post("/fault", {"kind": "crash", "exit_code": 7})
    assert r.status_code == 202 and r.json() == {"crashing": True, "exit_code": 7}
    assert nexus.proc.wait(5) == 7


@pytest.mark.parametrize(("extra", "env", "code"), [
    (["--crash-on-start", "--exit-code", "3"], {}, 3),
    ([], {"ATLAS_SAMPLE_FAULT": "crash_on_start"}, 1),
    ([], {"ATLAS_SAMPLE_FAULT": "crash_on_start", "ATLAS_SAMPLE_EXIT_CODE": "42"}, 42),
], ids=["flag", "env", "env-exit-code"])
def test_crash_on_start(start: Callable[..., Svc], extra: list[str], env: dict, code: int) -> None:
    svc = start("nexus", *extra, env=env, wait=False)
    assert svc.proc.wait(10) == code
    assert svc.log_lines()[-1]["message"] == "crashing on start (injected fault)"


def test_env_fault_active_at_start_and_bad_env_refused(start: Callable[..., Svc]) -> None:
    svc = start("nexus", env={"ATLAS_SAMPLE_FAULT": "slow=50"})
    assert svc.get("/fault").json()["faults"]["slow"]["delay_ms"] == 50
    bad = start("nexus", env={"ATLAS_SAMPLE_FAULT": "explode"}, wait=False)
    assert bad.proc.wait(10) == 2
    assert "'explode' is not one of crash_on_start" in bad.log_lines()[-1]["message"]


def test_slow_fault_adds_latency_until_cleared(nexus: Svc) -> None:
    assert nexus.post("/fault", {"kind": "slow", "delay_ms": 300}).status_code == 200
    t0 = time.perf_counter()
    assert nexus.get("/health").status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    nexus.get("/metrics")  # spared by default, so scrapes still work
    assert time.perf_counter() - t0 < 0.3
    nexus.post("/fault/clear")
    t0 = time.perf_counter()
    nexus.get("/health")
    assert time.perf_counter() - t0 < 0.3


def test_error_fault_answers_status_at_rate(nexus: Svc) -> None:
    nexus.post("/fault", {"kind": "error", "status": 503, "rate": 1.0})
    assert nexus.get("/health").status_code == 503
    assert nexus.get("/api/work", params={"ms": 1}).status_code == 503
    nexus.post("/fault", {"kind": "error", "rate": 0.5})
    codes = [nexus.get("/health").status_code for _ in range(6)]
    assert sorted(codes) == [200, 200, 200, 500, 500, 500]
    assert _sample(nexus.metrics()["sample_http_requests"], "sample_http_requests_total",
                   path="/health", code="500") == 3
    assert nexus.post("/fault/clear", {"kind": "error"}).json()["cleared"] == ["error"]
    assert nexus.get("/health").status_code == 200


def test_memory_fault_grows_rss_until_cleared(nexus: Svc) -> None:
    proc = psutil.Process(nexus.proc.pid)
    before = proc.memory_info().rss
    nexus.post("/fault", {"kind": "memory", "mb_per_s": 200, "max_mb": 64})
    _eventually(lambda: proc.memory_info().rss - before > 48 * 2**20)
    ballast = _sample(nexus.metrics()["sample_memory_ballast_bytes"],
                      "sample_memory_ballast_bytes")
    assert ballast >= 48 * 2**20
    nexus.post("/fault/clear")
    _eventually(lambda: proc.memory_info().rss - before < 24 * 2**20)


def test_hang_fault_times_out_then_clear_restores(nexus: Svc) -> None:
    nexus.post("/fault", {"kind": "hang"})
    with pytest.raises(httpx.ReadTimeout):
        nexus.get("/health", timeout=0.5)
    waiting: list[int] = []
    t = threading.Thread(target=lambda: waiting.append(
        httpx.get(nexus.url + "/health", timeout=5).status_code))
    t.start()
    time.sleep(0.2)
    assert not waiting  # still blocked
    assert nexus.post("/fault/clear").json()["cleared"] == ["hang"]
    t.join(5)
    assert waiting == [200]
    assert nexus.get("/health").status_code == 200


def test_hang_with_duration_clears_itself(nexus: Svc) -> None:
    nexus.post("/fault", {"kind": "hang", "duration_s": 0.3})
    t0 = time.perf_counter()
    assert nexus.get("/health").status_code == 200
    assert time.perf_counter() - t0 >= 0.25
    assert nexus.get("/fault").json()["faults"] == {}


def test_sigstop_hangs_and_sigcont_restores(nexus: Svc) -> None:
    os.kill(nexus.proc.pid, signal.SIGSTOP)
    _eventually(lambda: psutil.Process(nexus.proc.pid).status() == psutil.STATUS_STOPPED)
    try:
        with pytest.raises(httpx.TimeoutException):
            nexus.get("/health", timeout=0.5)
    finally:
        os.kill(nexus.proc.pid, signal.SIGCONT)
    assert nexus.get("/health").status_code == 200


def test_fault_listing_shows_active(nexus: Svc) -> None:
    nexus.post("/fault", {"kind": "slow", "delay_ms": 1, "paths": ["/api/"]})
    faults = nexus.get("/fault").json()["faults"]
    assert list(faults) == ["slow"] and faults["slow"]["paths"] == ["/api/"]
    active = {s.labels["kind"]: s.value for s in nexus.metrics()["sample_fault_active"]}
    assert active == {"hang": 0, "slow": 1, "error": 0, "memory": 0}


# ---------------------------------------------------------------- features, work, bad input

def test_features_toggle_degrades_and_disables(nexus: Svc) -> None:
    move = {"target": {"x": 0.3, "y": 0.1, "z": 0.2}, "speed": 0.5}
    assert nexus.post("/api/move", move).json()["planner"] == "minimum_jerk"
    r = nexus.put("/features", {"features": {"planning": False}})
    assert r.json()["features"] == {"motion": True, "heartbeat": True, "planning": False}
    assert nexus.post("/api/move", move).json()["planner"] == "linear"
    assert nexus.get("/health").json()["features_off"] == ["planning"]
    nexus.put("/features", {"features": {"motion": False}})
    r = nexus.post("/api/move", move)
    assert r.status_code == 503 and r.json() == {"error": "feature disabled", "feature": "motion"}
    assert nexus.get("/features").json()["features"]["motion"] is False
    assert nexus.get("/api/sensors").status_code == 404  # a robot endpoint: not declared here


def test_robot_work_endpoints(start: Callable[..., Svc]) -> None:
    robot = start("robot")
    s = robot.get("/api/sensors").json()
    assert len(s["load_avg"]) == 3 and s["cpu_count"] == os.cpu_count()
    assert s["memory"]["total_bytes"] == psutil.virtual_memory().total
    image = [[9.0 if 4 <= x < 12 and 4 <= y < 12 else 0.0 for x in range(16)] for y in range(16)]
    d = robot.post("/api/vision/detect", {"image": image}).json()
    assert d["regions"] == 1 and d["width"] == 16 and len(d["sha256"]) == 64
    box = d["detections"][0]
    assert (box["x0"], box["y0"], box["x1"], box["y1"]) == (3, 3, 12, 12)
    robot.put("/features", {"features": {"vision": False}})
    assert robot.post("/api/vision/detect", {"image": image}).status_code == 503


def test_generic_work_and_echo(nexus: Svc) -> None:
    w = nexus.get("/api/work", params={"ms": 50}).json()
    assert w["elapsed_ms"] >= 50 and w["iterations"] > 0
    assert nexus.post("/api/echo", {"a": [1, 2]}).json() == {"echo": {"a": [1, 2]}, "name": "nexus"}
    hb = nexus.get("/api/heartbeat").json()
    assert hb["seq"] == 1 and hb["name"] == "nexus"


@pytest.mark.parametrize(("method", "path", "body", "match"), [
    ("POST", "/fault", {"kind": "explode"}, "kind: 'explode' is not one of crash, hang"),
    ("POST", "/fault", {"kind": "slow"}, "delay_ms: required for kind 'slow'"),
    ("POST", "/fault", {"kind": "error", "rate": 2}, "rate: 2 is out of range; allowed: 0 to 1"),
    ("POST", "/fault", {"kind": "memory", "mb_per_s": 1, "x": 1}, "x: unknown field"),
    ("POST", "/fault", {"kind": "exit_on_start"}, "--crash-on-start"),
    ("POST", "/fault", None, "body: expected a JSON object"),
    ("PUT", "/features", {"features": {"warp": True}}, "features.warp: unknown feature; allowed"),
    ("PUT", "/features", {"features": {"motion": "yes"}},
     "features.motion: 'yes' is not a boolean"),
    ("POST", "/api/move", {"target": {"x": 1, "y": 2}}, "target.z: None is not a finite number"),
    ("POST", "/api/move", {"target": {"x": 1, "y": 2, "z": 3}, "speed": 0},
     "speed: 0 is out of range"),
    ("GET", "/api/work?ms=abc", None, "ms: 'abc' must be an integer"),
    ("GET", "/api/work?ms=99999", None, "ms: 99999 is out of range; allowed: 0 to 10000"),
    ("POST", "/api/echo", b"{not json", "body: not valid JSON"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_bad_input_is_400_naming_the_field(nexus: Svc, method: str, path: str, body: object,
                                           match: str) -> None:
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = nexus.http.request(method, path, **kw)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    assert match in r.json()["error"]


# ---------------------------------------------------------------- stopping, start-up time

def test_sigterm_exits_zero_within_a_second_even_while_hung(nexus: Svc) -> None:
    nexus.post("/fault", {"kind": "hang"})
    threading.Thread(target=lambda: _ignore(lambda: httpx.get(nexus.url + "/health", timeout=3)),
                     daemon=True).start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    nexus.proc.send_signal(signal.SIGTERM)
    assert nexus.proc.wait(1.0) == 0
    print(f"\nSIGTERM to exit: {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert nexus.log_lines()[-1]["message"] == "stopped"


def _ignore(fn: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        fn()


def test_port_in_use_exits_1(nexus: Svc, start: Callable[..., Svc]) -> None:
    other = start("robot", port=nexus.port, wait=False)
    assert other.proc.wait(10) == 1
    assert "cannot listen on" in other.log_lines()[-1]["message"]


def test_startup_to_first_health_printed(start: Callable[..., Svc]) -> None:
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        svc = start("nexus", wait=False)
        _wait_health(svc)
        times.append(time.perf_counter() - t0)
        _stop(svc.proc)
    print(f"\nstart-up to first /health 200: median {statistics.median(times) * 1000:.0f} ms, "
          f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (10 starts)")


# ---------------------------------------------------------------- in-process units

@pytest.mark.parametrize("value", [None, "", "garbage", "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
                                   "00-" + "0" * 32 + "-" + "b" * 16 + "-01"])
def test_invalid_traceparent_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_validate_fills_defaults_and_lists_every_problem() -> None:
    assert validate({"kind": "error"}) == {"kind": "error", "status": 500, "rate": 1.0}
    with pytest.raises(FaultError, match=r"status: 99 is out of range.*rate: 'x' is not a number"):
        validate({"kind": "error", "status": 99, "rate": "x"})


# ---------------------------------------------------------------- opt-in admission control
_ADMISSION_OVERLAY = """apiVersion: atlas.autonomous/v1
kind: PolicySet
metadata: {name: test-sample-admission}
spec:
  mode: governed
  policy:
    resilience:
      concurrency: {initial: 1, min: 1, max: 1}
      queue: {max_depth: 2}
"""


def test_default_start_imports_neither_pydantic_nor_yaml() -> None:
    code = ("import sys; from autonomous.sample_stack import cli, server; "
            "cli.parse_args(['--name', 'x', '--port', '1']); "
            "bad = [m for m in ('pydantic', 'yaml', 'psutil', 'autonomous.resilience') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_admission_sheds_low_with_retry_after_while_critical_and_probes_pass(
        start: Callable[..., Svc], tmp_path: Path) -> None:
    from autonomous.testing import copy_default_tree

    root = copy_default_tree(tmp_path / "root")
    (root / "policies" / "zz_test.yaml").write_text(_ADMISSION_OVERLAY)
    svc = start("nexus", "--admission-policy", str(root))
    assert any(ln.get("message") == "admission control on" for ln in svc.log_lines())
    low: list[httpx.Response] = []
    lock = threading.Lock()

    def one_low() -> None:
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            r = c.get("/api/work", params={"ms": 300}, headers={"x-atlas-priority": "LOW"})
        with lock:
            low.append(r)

    burst = [threading.Thread(target=one_low) for _ in range(8)]
    for t in burst:
        t.start()
    time.sleep(0.1)  # one LOW in flight (limit 1), two queued (depth 2), the rest shed
    probes = {p: svc.get(p, headers={"x-atlas-priority": "LOW"}).status_code
              for p in ("/health", "/ready", "/metrics")}
    crit = svc.get("/api/work", params={"ms": 10}, headers={"x-atlas-priority": "CRITICAL"})
    for t in burst:
        t.join(15)
    assert probes == {"/health": 200, "/ready": 200, "/metrics": 200}
    assert crit.status_code == 200, crit.text
    shed = [r for r in low if r.status_code == 429]
    assert len(low) == 8 and len(shed) >= 5, [r.status_code for r in low]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in shed)
    assert all(r.json()["retry_after_seconds"] > 0 and "LOW shed" in r.json()["error"]
               for r in shed)
    assert {r.status_code for r in low} <= {200, 429}
    assert _sample(svc.metrics()["sample_http_requests"], "sample_http_requests_total",
                   path="/api/work", code="429") == len(shed)


def test_admission_policy_file_errors_name_file_line_and_field(
        start: Callable[..., Svc], tmp_path: Path) -> None:
    bad = tmp_path / "resilience.yaml"
    text = (ROOT / "policies" / "resilience.yaml").read_text()
    bad.write_text(text.replace("max_depth: 256", "max_depth: -3"))
    svc = start("nexus", "--admission-policy", str(bad), wait=False)
    assert svc.proc.wait(30) == 2
    line = 1 + text.splitlines().index("        max_depth: 256")
    assert f"{bad}:{line}: spec.policy.resilience.queue.max_depth:" in svc.log.read_text()
    good = start("nexus", "--admission-policy", str(ROOT / "policies" / "resilience.yaml"))
    r = good.get("/api/work", params={"ms": 1}, headers={"x-atlas-priority": "HIGH"})
    assert r.status_code == 200, r.text
