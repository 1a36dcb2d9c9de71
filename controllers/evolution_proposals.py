"""The evolution controller's second half: update proposals → desired-state changes.

observe: open proposals (``autonomous/evolution/proposals.py``), for each whether its Service
is declared, serves through the gateway (``spec.traffic``), already declares the version, the
version is quarantined, and the state of its rollout.
plan (pure): a ``proposed`` proposal becomes one ``update`` action on its Service — so the
Executor's governance gate decides: growth applies it, governed asks for an approval,
emergency_stop records it only (dry run: the proposal stays ``proposed``); a member of an
update set was let through with its set (``proceed``). Applied, it is ``vetting``: its
checks run as a background job (``controllers/evolution_jobs.py``) that the next reconciles
observe — running: nothing to do; done: one ``vetted`` action concludes it; lost (the
operator restarted mid-vetting): one ``revet`` action runs the checks again. A
``rolling_out`` one is closed when its rollout ended (committed: the commit patched the
file; rolled back: quarantined). Concluding the checks and closing are ``proceed``: they
carry out (or record) what was decided when the proposal was let through, so governed asks
once per update. act: a Service with ``spec.traffic`` gets a staged rollout (served to the
rollout half as a RolloutSpec built from the proposal); one without is patched at once (its
version/argv in its YAML file; the services controller restarts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.evolution.proposals import PatchConflict, ProposalRow, ProposalStore, \
    patch_service, rollout_name
from autonomous.resources.kinds.evolution import RolloutSpec
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.context import OperatorContext
from controllers.base import Action, Outcome
from controllers.evolution_jobs import JobObserved, VettingJobs
from controllers.evolution_vetting import Vetting, candidate_argv, conclude

__all__ = ["ProposalObserved", "apply_commit", "plan_proposal", "rollout_specs"]


@dataclass(frozen=True)
class ProposalObserved:
    row: ProposalRow
    declared: bool
    declared_version: str | None
    traffic: bool
    quarantined: bool
    rollout_status: str | None  # the latest rollout of (service, version): running, ...
    job: JobObserved | None = None  # vetting: its background job (running, done or lost)
    in_set: bool = False  # a member of an open update set: let through with the set


def plan_proposal(o: ProposalObserved) -> tuple[Action, ...]:
    """Pure: what to do with one open proposal."""
    r = o.row
    res = f"Service/{r.service}"
    ev = {"proposal": r.id, "origin": r.origin, "current": r.current, "version": r.version}
    if r.state == "proposed":
        if not o.declared:
            return (Action("proceed", res, f"close proposal {r.id}: {r.service} is no longer "
                           "declared", params={"op": "close", "id": r.id, "to": "failed"},
                           evidence=ev),)
        if o.quarantined:
            return (Action("proceed", res, f"close proposal {r.id}: {r.service} {r.version} is "
                           "quarantined", params={"op": "close", "id": r.id,
                                                  "to": "rolled_back"}, evidence=ev),)
        if o.declared_version == r.version:
            return (Action("proceed", res, f"close proposal {r.id}: {r.service} already "
                           f"declares {r.version}", params={"op": "close", "id": r.id,
                                                           "to": "applied"}, evidence=ev),)
        how = "staged rollout" if o.traffic else "desired-state patch"
        return (Action("proceed" if o.in_set else "update", res,
                       f"update {r.service} {r.current} → {r.version} ({how}; {r.origin})",
                       params={"op": "propose", "id": r.id}, evidence=ev),)
    if r.state == "vetting":
        j = o.job
        if j is None or j.state == "lost":  # the operator restarted mid-vetting
            at = f" at {j.step} (attempt {j.attempt})" if j is not None else ""
            # kind retry, not update: the proposal was already let through (approved, in
            # governed mode); running its interrupted checks again decides nothing new
            return (Action("retry", res, f"proposal {r.id}: checks interrupted{at} by an "
                           "operator restart; stopping what they left, running them again",
                           params={"op": "revet", "id": r.id}, evidence=ev),)
        if j.state == "done":
            how = "passed" if j.ok else "failed"
            # the job's last word is its summary (each step's result); an older row, its step
            what = j.detail if j.step in ("passed", "failed") else j.step
            # proceed: the checks decide (failed: closed, quarantined; passed: on to the
            # rollout or the patch that was let through with the proposal)
            return (Action("proceed", res, f"proposal {r.id}: checks {how} ({what})",
                           params={"op": "vetted", "id": r.id}, evidence=ev),)
        return ()  # running: observed again at the next reconcile (or when it ends)
    if r.state == "rolling_out" and o.rollout_status in ("committed", "rolled_back"):
        to = "applied" if o.rollout_status == "committed" else "rolled_back"
        if o.rollout_status == "committed" and o.declared_version != r.version:
            return ()  # the commit patches the file; wait for the reload to show it
        return (Action("proceed", res, f"close proposal {r.id}: rollout {o.rollout_status}",
                       params={"op": "close", "id": r.id, "to": to}, evidence=ev),)
    return ()


def rollout_specs(rows: list[ProposalRow], services: dict[str, Any]
                  ) -> dict[str, RolloutSpec]:
    """A RolloutSpec per ``rolling_out`` proposal (named ``proposal-<id>``)."""
    out: dict[str, RolloutSpec] = {}
    for r in rows:
        svc = services.get(r.service)
        if r.state != "rolling_out" or svc is None or r.current == r.version:
            continue
        out[rollout_name(r.id)] = RolloutSpec.model_validate({
            "service": r.service, "from_version": r.current, "to_version": r.version,
            "command": candidate_argv(r.command or list(svc.command), svc.port),
            "env": dict(svc.env)})
    return out


def apply_commit(ctx: OperatorContext, spec: RolloutSpec) -> str:
    """At a rollout's commit: the Service's YAML file gets the new version (and argv, with its
    own port back in place of ``{port}``). Returns what was done (for the event)."""
    gen = ctx.desired.current
    res = gen.tree.resources.get(("Service", spec.service)) if gen is not None else None
    if res is None:
        return f"{spec.service} not declared: file not patched"
    svc = res.spec
    assert isinstance(svc, ServiceSpec)  # the ("Service", name) key holds a Service
    argv = [str(svc.port) if a == "{port}" else a for a in spec.command]
    try:
        commit = patch_service(Path(ctx.root), res.file, svc.version, spec.to_version,
                               list(svc.command), argv,
                               f"evolution: {spec.service} {svc.version} → {spec.to_version} "
                               "(rollout committed)")
    except (PatchConflict, OSError) as e:
        return f"file not patched: {e}"
    return f"{res.file} patched" + (f" (commit {commit[:12]})" if commit else "")


async def act_proposal(ctx: OperatorContext, store: ProposalStore, jobs: VettingJobs,
                       action: Action) -> Outcome:
    pid = int(action.params["id"])
    now = ctx.clock.now()
    op = action.params["op"]
    try:
        row = store.get(pid)
    except KeyError:
        return Outcome(action, False, f"proposal {pid} no longer exists", permanent=True)
    if op == "close":
        store.set_state(pid, action.params["to"], action.reason, now)
        return Outcome(action, True, f"proposal {pid} {action.params['to']}")
    gen = ctx.desired.current
    res = gen.tree.resources.get(("Service", row.service)) if gen is not None else None
    want = "proposed" if op == "propose" else "vetting"
    if row.state != want:
        return Outcome(action, False, f"proposal {pid} is {row.state}", permanent=True)
    if res is None:
        jobs.end(pid)
        store.set_state(pid, "failed", f"{row.service} is no longer declared", now)
        return Outcome(action, False, f"{row.service} is not declared", permanent=True)
    if op == "propose":  # the checks run in the background; observed by the next reconciles
        store.set_state(pid, "vetting", "checks running (snapshot → regression tests → "
                        "sandbox)", now)
        jobs.start(row, res.spec)
        return Outcome(action, True, f"proposal {pid}: checks started in the background")
    if op == "revet":
        rec, left = await jobs.resume(row, res.spec)
        store.set_state(pid, "vetting", f"checks running again after an operator restart "
                        f"(left processes stopped: {left or 'none'})", now)
        return Outcome(action, True, f"proposal {pid}: checks restarted (attempt "
                       f"{(rec.attempt + 1) if rec is not None else 1}; stopped {left})")
    result = jobs.result(pid)
    if not isinstance(result, Vetting):
        jobs.end(pid)
        why = f"checks did not finish: {type(result).__name__}: {result}"
        store.set_state(pid, "failed", why, now)
        return Outcome(action, False, f"proposal {pid}: {why}", permanent=True)
    jobs.end(pid)
    return _vetted(ctx, store, action, row, res, result)


def _vetted(ctx: OperatorContext, store: ProposalStore, action: Action, row: ProposalRow, res: Any,
            vetting: Vetting) -> Outcome:
    """The checks ended: notified once; failed → quarantined, closed; passed → a staged
    rollout (``spec.traffic``) or the desired-state patch."""
    pid = row.id
    conclude(ctx, row, vetting)
    now = ctx.clock.now()
    if not vetting.ok:
        store.set_state(pid, "failed", f"checks failed: {vetting.summary}", now)
        return Outcome(action, False, f"proposal {pid}: checks failed: {vetting.summary}",
                       permanent=True)
    if vetting.snapshot is not None and vetting.repository is not None:
        store.set_snapshot(pid, row.service, vetting.snapshot, vetting.repository, now)
    if res.spec.traffic is not None:
        store.set_state(pid, "rolling_out", f"staged rollout of {row.version} (checks passed: "
                        f"{vetting.summary})", now)
        ctx.trigger("evolution")
        return Outcome(action, True, f"proposal {pid}: staged rollout of {row.service} "
                       f"{row.version}")
    try:
        commit = patch_service(Path(ctx.root), res.file, res.spec.version, row.version,
                               list(res.spec.command), row.command,
                               f"evolution: {row.service} {res.spec.version} → {row.version} "
                               f"(proposal {pid}, {row.origin})")
    except (PatchConflict, OSError) as e:
        store.set_state(pid, "failed", str(e), now)
        return Outcome(action, False, f"proposal {pid}: {e}", permanent=True)
    store.set_state(pid, "applied", f"{res.file} patched" +
                    (f" (commit {commit[:12]})" if commit else "") +
                    f" (checks passed: {vetting.summary})", now)
    return Outcome(action, True, f"proposal {pid}: {res.file} patched")
