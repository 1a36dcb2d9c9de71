"""RegressionTester against real processes and HTTP servers."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from autonomous.evolution.metrics_comparator import Verdict
from autonomous.evolution.regression_tester import ApiCheck, RegressionTester
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.testing import serve_http

ROOT = Path(__file__).resolve().parents[2]
JUDGE = EvolutionPolicy.model_validate(yaml.safe_load(
    (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"]).judge


def _handler(delay_s: float, broken: str = "") -> type[BaseHTTPRequestHandler]:
    wait = threading.Event()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            wait.wait(delay_s)  # never set: a fixed service time
            code = 500 if broken and self.path.startswith(broken) else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a: object) -> None:
            pass
    return H


async def test_test_suite_passes_on_exit_zero_and_fails_otherwise() -> None:
    rt = RegressionTester(ProbeClient())
    ok = await rt.run_full_test_suite([sys.executable, "-c", "print('3 passed')"])
    assert ok.passed and "3 passed" in ok.detail
    bad = await rt.run_full_test_suite([sys.executable, "-c",
                                        "import sys; print('1 failed'); sys.exit(1)"])
    assert not bad.passed and "exit 1" in bad.detail and "1 failed" in bad.failures[0]


async def test_api_checks_and_benchmark_comparison() -> None:
    client = ProbeClient()
    rt = RegressionTester(client)
    try:
        with serve_http(_handler(0.002)) as base, serve_http(_handler(0.02, "/api")) as cand:
            bu = f"http://127.0.0.1:{base.server_address[1]}"
            cu = f"http://127.0.0.1:{cand.server_address[1]}"
            checks = [ApiCheck("/health"), ApiCheck("/api/status")]
            assert (await rt.run_api_tests(bu, checks)).passed
            r = await rt.run_api_tests(cu, checks)
            assert not r.passed and r.failures == ["GET /api/status: 500, expected 200"]
            n = JUDGE.min_samples  # a latency rollback needs as many samples as a pass
            b = await rt.run_performance_benchmark(bu + "/health", n)
            c = await rt.run_performance_benchmark(cu + "/health", n)
            assert b.errors == 0 and len(b.latencies_ms) == n
            verdict = rt.compare_with_baseline(b, c, JUDGE)
            assert verdict.verdict is Verdict.ROLLBACK and "latency" in verdict.reason
            e = await rt.run_performance_benchmark(cu + "/api/x", 10)
            assert e.errors == 10 and e.latencies_ms == ()
    finally:
        await client.aclose()


pytestmark = pytest.mark.timeout(60)
