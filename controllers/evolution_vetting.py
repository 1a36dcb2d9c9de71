"""Before any traffic reaches an update: the pre-rollout checks of the evolution flow.

The evolution controller applies a proposal (a found or requested version) only after
:meth:`~autonomous.evolution.evolution_orchestrator_v2.EvolutionOrchestratorV2.vet` passed on
it — a snapshot of the declared paths on the one backup engine, the service's regression suite
(argv, in the root), and the candidate started alone on a free loopback port and checked. What
to run comes from the Service's ``UpdateSource`` ``checks`` (defaults: no snapshot, no suite,
``GET /health`` → 200 after ``/ready``). A failure closes the proposal as ``failed`` with the
step and its output and quarantines the version (no scan or reconcile proposes it again until a
human clears it); both outcomes are notified once. The snapshot is recorded with the proposal:
when its rollout rolls back, :func:`restore_after_rollback` puts back the files the update
touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import EngineParams
from autonomous.backup.engine import BackupEngine
from autonomous.context import OperatorContext
from autonomous.evolution.backup_manager import BackupManager
from autonomous.evolution.evolution_orchestrator_v2 import (
    EvolutionOrchestratorV2,
    Step,
    UpdatePlan,
)
from autonomous.evolution.facade import EvolutionFacade
from autonomous.evolution.data_restore import restore_touched
from autonomous.evolution.proposals import ProposalRow, ProposalStore, proposal_of
from autonomous.evolution.regression_tester import ApiCheck, RegressionTester
from autonomous.evolution.store import RolloutStore
from autonomous.intents import IntentStore
from autonomous.resources.kinds.evolution import UpdateChecksSpec, UpdateSourceSpec
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.supervisor.probe_client import ProbeClient

__all__ = ["Vetting", "checks_for", "conclude", "restore_after_rollback", "run_checks",
           "vet_proposal"]


@dataclass(frozen=True)
class Vetting:
    ok: bool
    summary: str  # one line per step: "backup ok: snapshot …; regression_tests FAILED: exit 3"
    steps: tuple[Step, ...]
    snapshot: str | None = None  # backup id of the pre-update snapshot, if one was taken
    repository: str | None = None


def checks_for(ctx: OperatorContext, service: str) -> UpdateChecksSpec:
    """The checks the Service's UpdateSource declares (the defaults without one)."""
    gen = ctx.desired.current
    if gen is not None:
        for res in gen.tree.of_kind("UpdateSource"):
            if isinstance(res.spec, UpdateSourceSpec) and res.spec.service == service:
                return res.spec.checks
    return UpdateChecksSpec()


def candidate_argv(command: list[str], port: int | None) -> list[str]:
    """The Service's own port in its argv becomes the candidate's ``{port}``."""
    return ["{port}" if port is not None and a == str(port) else a for a in command]


def _repo(ctx: OperatorContext, repository: str) -> Path:
    repo = Path(repository.replace("{data_dir}", str(ctx.data_dir)))
    return repo if repo.is_absolute() else Path(ctx.root) / repo


def _engine(ctx: OperatorContext, repository: str) -> BackupEngine:
    repo = _repo(ctx, repository)
    params = EngineParams.from_policy(ctx.policy()["resilience"]["backup"])
    return BackupEngine(repo, params, root=Path(ctx.root), data_dir=ctx.data_dir,
                        store=ctx.store, clock=ctx.clock)


def _summary(steps: list[Step]) -> str:
    return "; ".join(f"{s.name} {'ok' if s.ok else 'FAILED'}: {s.detail}" for s in steps)


def _orchestrator(ctx: OperatorContext, client: ProbeClient, backups: BackupManager | None,
                  progress: Callable[[str, str], None] | None = None,
                  spawned: Callable[[int], None] | None = None) -> EvolutionOrchestratorV2:
    judge = EvolutionPolicy.model_validate(ctx.policy()["evolution"]).judge
    return EvolutionOrchestratorV2(EvolutionFacade(ctx.store, ctx.clock, ctx.desired, ctx.root),
                                   RegressionTester(client), judge, ctx.bus,
                                   ctx.data_dir / "evolution" / "CHANGELOG.md", backups,
                                   progress=progress, spawned=spawned)


async def run_checks(ctx: OperatorContext, row: ProposalRow, svc: Any,
                     progress: Callable[[str, str], None] | None = None,
                     spawned: Callable[[int], None] | None = None) -> Vetting:
    """Run the checks on ``row``'s version of Service ``svc`` (the background job's body:
    decides nothing — :func:`conclude` records the outcome)."""
    checks = checks_for(ctx, row.service)
    plan = UpdatePlan(
        row.service, row.version, candidate_argv(row.command or list(svc.command), svc.port),
        test_command=checks.test_command,
        checks=[ApiCheck(c.path, c.status) for c in checks.api_checks],
        ready_path=checks.ready_path, backup_paths=list(checks.snapshot_paths),
        env=dict(svc.env), test_timeout_s=checks.test_timeout_seconds,
        ready_timeout_s=checks.ready_timeout_seconds, cwd=str(ctx.root),
        sandbox_dir=str(ctx.data_dir / "sandboxes" / f"proposal-{row.id}"))
    client = ProbeClient()
    backups = BackupManager(_engine(ctx, checks.repository)) if checks.snapshot_paths else None
    orch = _orchestrator(ctx, client, backups, progress, spawned)
    try:
        steps = await orch.vet(plan)
    finally:
        await client.aclose()
    snap = steps[0].data.get("snapshot", {}).get("id") if steps[0].name == "backup" else None
    if snap is not None and backups is not None:  # retention of the service's snapshots
        await asyncio.to_thread(backups.cleanup_old_snapshots, row.service,
                                checks.keep_snapshots)
    return Vetting(steps[-1].ok, _summary(steps), tuple(steps), snap,
                   str(_repo(ctx, checks.repository)) if snap else None)


def conclude(ctx: OperatorContext, row: ProposalRow, vetting: Vetting) -> None:
    """The checks' outcome: notified once; a failure quarantines the version."""
    client = ProbeClient()  # not used for requests: the orchestrator's notify only
    orch = _orchestrator(ctx, client, None)
    if vetting.ok:
        orch.notify(row.service, f"update {row.service} → {row.version}: checks passed "
                    f"({vetting.summary})")
        return
    RolloutStore(ctx.store).quarantine(row.service, row.version,
                                       f"checks failed: {vetting.summary}", ctx.clock.now())
    last = vetting.steps[-1] if vetting.steps else None
    orch.notify(row.service, f"update {row.service} → {row.version} stopped at "
                f"{last.name if last else 'checks'}: {last.detail if last else vetting.summary}",
                "warning")


async def vet_proposal(ctx: OperatorContext, row: ProposalRow, svc: Any) -> Vetting:
    """:func:`run_checks` then :func:`conclude`, in one await (tools and tests)."""
    vetting = await run_checks(ctx, row, svc)
    conclude(ctx, row, vetting)
    return vetting


async def restore_after_rollback(ctx: OperatorContext, rollout: str, service: str,
                                 reason: str) -> dict[str, Any] | None:
    """A rolled-back rollout of a proposal whose checks took a snapshot: put back the files
    the update touched (:func:`~autonomous.evolution.data_restore.restore_touched`) and, when
    any was, ask the services controller to restart the service (it reopens them). None when
    there is nothing to restore; the report (or the error) otherwise, for the rollout's
    evidence."""
    pid = proposal_of(rollout)
    if pid is None:
        return None
    found = ProposalStore(ctx.store).snapshot(pid)
    if found is None:
        return None
    backup_id, repository = found
    params = EngineParams.from_policy(ctx.policy()["resilience"]["backup"])
    engine = BackupEngine(Path(repository), params, root=Path(ctx.root), data_dir=ctx.data_dir,
                          store=ctx.store, clock=ctx.clock)
    staging = ctx.data_dir / "restores" / f"evolution-{rollout}"
    try:
        report = await asyncio.to_thread(restore_touched, engine, backup_id, staging)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        return {"snapshot": backup_id, "error": f"{type(e).__name__}: {e}"}
    out: dict[str, Any] = report.as_dict()
    if report.restored:
        intent = IntentStore(ctx.store, ctx.clock, ctx.bus).request(
            "restart_requested", f"Service/{service}", requester="evolution",
            reason=f"data restored from snapshot {backup_id} after rollback ({reason})")
        out["restart_intent"] = intent.id
    return out
