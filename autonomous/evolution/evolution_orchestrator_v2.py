"""EvolutionOrchestratorV2: the update flow of the specification, one method per step.

    scan → backup → regression tests → sandbox → baseline → staged rollout → metrics
    comparison → automatic rollback → changelog → notification

Each method is one step on the pieces that already do it (no second implementation): update
sources and proposals (:class:`~autonomous.evolution.facade.EvolutionFacade`), snapshots on
the one backup engine (:class:`~autonomous.evolution.backup_manager.BackupManager`), the
:class:`~autonomous.evolution.regression_tester.RegressionTester`, the judge
(:func:`~autonomous.evolution.metrics_comparator.compare`), the changelog. ``run_update`` runs
the pre-rollout steps in order and stops at the first failing one; its last step,
``staged_rollout``, hands the update to the evolution controller as a proposal (data): the
phases, the paired-probe comparison, the automatic rollback, the changelog entry and the
notifications of the rollout itself happen there, through the Executor and its governance gate.
The sandbox is the candidate run once on a free loopback port (own session, PDEATHSIG), checked
and stopped before any traffic reaches it — on a copy of its data: the pre-update snapshot
restored into a sandbox folder that its cwd, argv and env point at
(:mod:`autonomous.evolution.sandbox`), so a failing candidate never touches live data.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonomous.core.events import EventBus
from autonomous.evolution.backup_manager import BackupManager
from autonomous.evolution.changelog import append_entry, entry
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.metrics_comparator import Comparison, Samples, compare
from autonomous.evolution.regression_tester import ApiCheck, RegressionTester, TestResult
from autonomous.evolution.sandbox import SandboxData, changed_files, discard, prepare
from autonomous.resources.policy.evolution import JudgePolicy
from autonomous.supervisor.processes import expand_argv, spawn_argv

__all__ = ["EvolutionOrchestratorV2", "Step", "UpdatePlan"]


@dataclass(frozen=True)
class UpdatePlan:
    service: str
    version: str
    command: list[str]  # the candidate's argv; '{python}' and '{port}' are expanded
    test_command: list[str] | None = None  # the service's regression suite (argv)
    checks: list[ApiCheck] = field(default_factory=lambda: [ApiCheck("/health")])
    ready_path: str = "/ready"
    backup_paths: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    test_timeout_s: float = 300.0
    ready_timeout_s: float | None = None  # None: the orchestrator's
    cwd: str | None = None  # where the regression suite runs (the root)
    sandbox_dir: str | None = None  # the candidate's data copy goes here (None: a temp dir)


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class EvolutionOrchestratorV2:
    def __init__(self, facade: EvolutionFacade, tester: RegressionTester, judge: JudgePolicy,
                 bus: EventBus, changelog: Path, backups: BackupManager | None = None,
                 ready_timeout_s: float = 20.0,
                 progress: Callable[[str, str], None] | None = None,
                 spawned: Callable[[int], None] | None = None) -> None:
        """``progress(step, detail)``: told as each step of :meth:`vet` starts;
        ``spawned(pid)``: told each process group leader it starts (the suite, the
        sandboxed candidate), so a background job's processes can be found after a crash."""
        self.progress = progress or (lambda step, detail: None)
        self.spawned = spawned
        self.facade = facade
        self.tester = tester
        self.judge = judge
        self.bus = bus
        self.changelog = changelog
        self.backups = backups
        self.ready_timeout_s = ready_timeout_s

    # -- the steps --------------------------------------------------------------------------
    def scan(self, service: str | None = None) -> dict[str, Any]:
        return self.facade.scan(service)

    def backup(self, service: str, paths: list[str]) -> Step:
        if not paths:
            return Step("backup", True, "nothing declared to snapshot")
        if self.backups is None:
            return Step("backup", False, "paths declared but no backup engine configured")
        snap = self.backups.create_snapshot(service, paths)
        return Step("backup", True, f"snapshot {snap.get('id')}", {"snapshot": snap})

    async def run_regression_tests(self, argv: list[str] | None, *, cwd: str | None = None,
                                   timeout_s: float = 300.0) -> TestResult | None:
        if argv is None:
            return None
        return await self.tester.run_full_test_suite(expand_argv(argv), cwd=cwd,
                                                     timeout_s=timeout_s,
                                                     on_start=self.spawned)

    async def sandbox(self, plan: UpdatePlan, data: SandboxData | None = None) -> TestResult:
        """Start the candidate on a free port (on ``data``: cwd, argv and env pointed at the
        copy), wait for ``ready_path``, run the API checks, stop it (SIGTERM, then SIGKILL)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        argv = [a.replace("{port}", str(port)) for a in expand_argv(plan.command)]
        env = {**plan.env, "PORT": str(port)}
        if data is not None:
            argv, env = data.argv(argv), data.env(env)
        cwd = str(data.dir) if data is not None else None
        full_env = {**os.environ, **env}
        argv, pre = spawn_argv(argv, cwd, full_env)  # PDEATHSIG via setpriv, no preexec_fn
        proc = await asyncio.create_subprocess_exec(
            *argv, env=full_env, cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            preexec_fn=pre)  # noqa: PLW1509
        if self.spawned is not None:
            self.spawned(proc.pid)
        base = f"http://127.0.0.1:{port}"
        try:
            loop = asyncio.get_running_loop()
            patience = plan.ready_timeout_s or self.ready_timeout_s
            deadline = loop.time() + patience
            while not (await self.tester.run_api_tests(base, [ApiCheck(plan.ready_path)])
                       ).passed:
                if proc.returncode is not None or loop.time() > deadline:
                    why = (f"exited {proc.returncode}" if proc.returncode is not None
                           else f"not ready within {patience:g}s")
                    return TestResult("sandbox", False, f"candidate {why}", 0.0, [why])
                await asyncio.sleep(0.05)  # polling a real condition (readiness)
            result = await self.tester.run_api_tests(base, plan.checks)
            result.name = "sandbox"
            return result
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.shield(asyncio.wait_for(proc.wait(), 5))
                except TimeoutError:
                    proc.kill()
                    await asyncio.shield(proc.wait())

    async def capture_baseline(self, url: str, requests: int) -> Samples:
        return await self.tester.run_performance_benchmark(url, requests)

    def staged_rollout(self, plan: UpdatePlan, actor: str) -> dict[str, Any]:
        """Hand the update to the evolution controller (a proposal; gated per mode)."""
        return self.facade.update(plan.service, plan.version, plan.command, actor)

    def compare_metrics(self, baseline: Samples, candidate: Samples,
                        rounds: tuple[float, ...] = ()) -> Comparison:
        return compare(baseline, candidate, self.judge, rounds)

    def auto_rollback(self, service: str, reason: str, actor: str) -> dict[str, Any]:
        return self.facade.rollback(service, actor, reason)

    def write_changelog(self, rollout_id: int, service: str, from_version: str,
                        to_version: str, status: str, reason: str, evidence: dict[str, Any],
                        ts: float) -> bool:
        return append_entry(self.changelog, rollout_id, entry(
            rollout_id, service, from_version, to_version, status, reason, evidence, ts))

    def notify(self, service: str, what: str, severity: str = "info") -> None:
        """One notification (the alert channels, through ``alert.human``)."""
        self.bus.publish("alert.human", source="evolution", service=service,
                         severity=severity, reason=what, message=what)

    # -- the flow ---------------------------------------------------------------------------
    async def vet(self, plan: UpdatePlan) -> list[Step]:
        """backup → regression tests → sandbox, stopping at the first failing step: what an
        update must pass before any traffic reaches it (the evolution controller runs this
        for every proposal it applies)."""
        self.progress("backup", f"snapshot of {len(plan.backup_paths)} path(s)"
                      if plan.backup_paths else "nothing declared to snapshot")
        try:
            steps = [await asyncio.to_thread(self.backup, plan.service, plan.backup_paths)]
        except (OSError, RuntimeError, ValueError) as e:  # the engine refuses with a reason
            steps = [Step("backup", False, f"{type(e).__name__}: {e}")]
        if steps[-1].ok:
            self.progress("regression_tests", " ".join(plan.test_command)
                          if plan.test_command else "no test command declared")
            t = await self.run_regression_tests(plan.test_command, cwd=plan.cwd,
                                                timeout_s=plan.test_timeout_s)
            steps.append(Step("regression_tests", True, "no test command declared") if t is None
                          else Step("regression_tests", t.passed, t.detail))
        if steps[-1].ok:
            self.progress("sandbox", f"candidate {plan.version} on a copy of its data, "
                          f"{len(plan.checks)} API check(s)")
            steps.append(await self.sandboxed(plan, steps[0].data.get("snapshot", {}).get("id")))
        return steps

    async def sandboxed(self, plan: UpdatePlan, snapshot: str | None) -> Step:
        """The sandbox step on a copy of the data: ``snapshot`` (the backup step's) restored
        into ``plan.sandbox_dir``, removed afterwards; the files the candidate changed in its
        copy are reported."""
        folder = Path(plan.sandbox_dir or tempfile.mkdtemp(prefix="atlas-sandbox-"))
        root = Path(plan.cwd or os.getcwd())
        try:
            manifest = (await asyncio.to_thread(self.backups.manifest, snapshot)
                        if snapshot is not None and self.backups is not None else None)
            data = await asyncio.to_thread(
                prepare, folder, root, manifest,
                self.backups.restore_snapshot if self.backups is not None else None)
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            discard(folder)
            return Step("sandbox", False, f"data copy not prepared: {type(e).__name__}: {e}")
        try:
            s = await self.sandbox(plan, data)
            touched = await asyncio.to_thread(changed_files, data, manifest)
        finally:
            await asyncio.to_thread(discard, folder)
        detail = s.detail + (f"; data copy: {len(touched)} file(s) changed by the candidate"
                             if manifest is not None else "")
        return Step("sandbox", s.passed, detail, {"failures": s.failures,
                                                 "sandbox_dir": str(folder),
                                                 "data_changed": touched})

    async def run_update(self, plan: UpdatePlan, actor: str) -> list[Step]:
        """:meth:`vet`, then the hand-off to the staged rollout; stops at the first failing
        step (notified), never proposing an update that failed one."""
        steps = await self.vet(plan)
        if steps[-1].ok:
            out = self.staged_rollout(plan, actor)
            steps.append(Step("staged_rollout", True, f"proposal {out['proposal']['id']} "
                              f"({out['proposal']['state']})", out))
            self.notify(plan.service, f"update {plan.service} → {plan.version}: checks passed, "
                        "staged rollout proposed")
        else:
            self.notify(plan.service, f"update {plan.service} → {plan.version} stopped at "
                        f"{steps[-1].name}: {steps[-1].detail}", "warning")
        return steps
