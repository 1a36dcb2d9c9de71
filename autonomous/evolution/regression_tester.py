"""Regression tests of a candidate version before any traffic reaches it.

* :meth:`RegressionTester.run_full_test_suite` — the service's declared test command (an argv
  list, never a shell string), with a timeout; passes on exit status 0. It runs in its own
  process group, dies with the operator (PDEATHSIG), and what it leaves running in its group
  is killed when it ends, times out or is cancelled.
* :meth:`RegressionTester.run_api_tests` — GETs of declared paths (its probes and API checks)
  against the sandboxed candidate; each must answer its expected status.
* :meth:`RegressionTester.run_performance_benchmark` — N sequential GETs of one path, latency
  per request (ms) and errors, as :class:`~autonomous.evolution.metrics_comparator.Samples`.
* :meth:`RegressionTester.compare_with_baseline` — the judge on two benchmarks.

HTTP goes through the operator's one probe client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from autonomous.evolution.metrics_comparator import Comparison, Samples, compare
from autonomous.resources.policy.evolution import JudgePolicy
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.supervisor.processes import spawn_argv

__all__ = ["ApiCheck", "RegressionTester", "TestResult"]


@dataclass(frozen=True)
class ApiCheck:
    path: str
    status: int = 200


@dataclass
class TestResult:
    name: str
    passed: bool
    detail: str
    duration_s: float
    failures: list[str] = field(default_factory=list)


class RegressionTester:
    def __init__(self, client: ProbeClient, timeout_s: float = 2.0) -> None:
        self.client = client
        self.timeout_s = timeout_s

    async def run_full_test_suite(self, argv: list[str], cwd: str | None = None,
                                  env: dict[str, str] | None = None,
                                  timeout_s: float = 300.0,
                                  on_start: Callable[[int], None] | None = None) -> TestResult:
        """``on_start``: told the suite's pid (the leader of its own process group) once it
        runs; it dies with the operator (PDEATHSIG), the rest of its group is the caller's
        to stop (``autonomous.evolution.vetting.stop_left_groups``)."""
        t0 = time.monotonic()
        args, pre = spawn_argv(list(argv), cwd, dict(os.environ) if env is None else env)
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own group: a timeout kills what it started too
            preexec_fn=pre)  # noqa: PLW1509
        if on_start is not None:
            on_start(proc.pid)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.CancelledError:  # the job was cancelled (operator stopping): no orphan
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            raise
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return TestResult("test_suite", False, f"timed out after {timeout_s:g}s",
                              time.monotonic() - t0)
        with contextlib.suppress(ProcessLookupError):  # what it left running in its group
            os.killpg(proc.pid, signal.SIGKILL)
        tail = out.decode(errors="replace")[-2000:]
        ok = proc.returncode == 0
        return TestResult("test_suite", ok, f"exit {proc.returncode}: {tail.strip()[-300:]}",
                          time.monotonic() - t0, [] if ok else [tail])

    async def run_api_tests(self, base_url: str, checks: list[ApiCheck]) -> TestResult:
        t0 = time.monotonic()
        failures = []
        for c in checks:
            try:
                r = await self.client.get(base_url.rstrip("/") + c.path, timeout=self.timeout_s)
                if r.status_code != c.status:
                    failures.append(f"GET {c.path}: {r.status_code}, expected {c.status}")
            except httpx.HTTPError as e:
                failures.append(f"GET {c.path}: {type(e).__name__}: {e}")
        return TestResult("api", not failures, f"{len(checks) - len(failures)}/{len(checks)} "
                          "checks passed", time.monotonic() - t0, failures)

    async def run_performance_benchmark(self, url: str, requests: int) -> Samples:
        lat: list[float] = []
        errors = 0
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                r = await self.client.get(url, timeout=self.timeout_s)
                ok = r.status_code < 500
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append((time.perf_counter() - t0) * 1000.0)
            else:
                errors += 1
        return Samples(tuple(lat), requests, errors)

    @staticmethod
    def compare_with_baseline(baseline: Samples, candidate: Samples, policy: JudgePolicy
                              ) -> Comparison:
        return compare(baseline, candidate, policy)
