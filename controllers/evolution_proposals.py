"""The evolution controller's second half: update proposals → desired-state changes.

observe: open proposals (``autonomous/evolution/proposals.py``), for each whether its Service
is declared, serves through the gateway (``spec.traffic``), already declares the version, the
version is quarantined, and the state of its rollout.
plan (pure): a ``proposed`` proposal becomes one ``update`` action on its Service — so the
Executor's governance gate decides: growth applies it, governed asks for an approval,
emergency_stop records it only (dry run: the proposal stays ``proposed``). A ``rolling_out``
one is closed when its rollout ended (committed: the commit patched the file; rolled back:
quarantined). act: a Service with ``spec.traffic`` gets a staged rollout (served to the
rollout half as a RolloutSpec built from the proposal); one without is patched at once (its
version/argv in its YAML file; the services controller restarts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.evolution.proposals import PatchConflict, ProposalRow, ProposalStore, \
    patch_service
from autonomous.resources.kinds.evolution import RolloutSpec
from controllers.base import Action, Outcome
from controllers.evolution_vetting import candidate_argv, vet_proposal

__all__ = ["ProposalObserved", "apply_commit", "plan_proposal", "rollout_specs"]


@dataclass(frozen=True)
class ProposalObserved:
    row: ProposalRow
    declared: bool
    declared_version: str | None
    traffic: bool
    quarantined: bool
    rollout_status: str | None  # the latest rollout of (service, version): running, ...


def plan_proposal(o: ProposalObserved) -> tuple[Action, ...]:
    """Pure: what to do with one open proposal."""
    r = o.row
    res = f"Service/{r.service}"
    ev = {"proposal": r.id, "origin": r.origin, "current": r.current, "version": r.version}
    if r.state == "proposed":
        if not o.declared:
            return (Action("update", res, f"close proposal {r.id}: {r.service} is no longer "
                           "declared", params={"op": "close", "id": r.id, "to": "failed"},
                           evidence=ev),)
        if o.quarantined:
            return (Action("update", res, f"close proposal {r.id}: {r.service} {r.version} is "
                           "quarantined", params={"op": "close", "id": r.id,
                                                  "to": "rolled_back"}, evidence=ev),)
        if o.declared_version == r.version:
            return (Action("update", res, f"close proposal {r.id}: {r.service} already "
                           f"declares {r.version}", params={"op": "close", "id": r.id,
                                                           "to": "applied"}, evidence=ev),)
        how = "staged rollout" if o.traffic else "desired-state patch"
        return (Action("update", res, f"update {r.service} {r.current} → {r.version} ({how}; "
                       f"{r.origin})", params={"op": "propose", "id": r.id}, evidence=ev),)
    if r.state == "rolling_out" and o.rollout_status in ("committed", "rolled_back"):
        to = "applied" if o.rollout_status == "committed" else "rolled_back"
        if o.rollout_status == "committed" and o.declared_version != r.version:
            return ()  # the commit patches the file; wait for the reload to show it
        return (Action("update", res, f"close proposal {r.id}: rollout {o.rollout_status}",
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
        out[f"proposal-{r.id}"] = RolloutSpec.model_validate({
            "service": r.service, "from_version": r.current, "to_version": r.version,
            "command": candidate_argv(r.command or list(svc.command), svc.port),
            "env": dict(svc.env)})
    return out


def apply_commit(ctx: Any, spec: RolloutSpec) -> str:
    """At a rollout's commit: the Service's YAML file gets the new version (and argv, with its
    own port back in place of ``{port}``). Returns what was done (for the event)."""
    gen = ctx.desired.current
    res = gen.tree.resources.get(("Service", spec.service)) if gen is not None else None
    if res is None:
        return f"{spec.service} not declared: file not patched"
    svc = res.spec
    argv = [str(svc.port) if a == "{port}" else a for a in spec.command]
    try:
        commit = patch_service(Path(ctx.root), res.file, svc.version, spec.to_version,
                               list(svc.command), argv,
                               f"evolution: {spec.service} {svc.version} → {spec.to_version} "
                               "(rollout committed)")
    except (PatchConflict, OSError) as e:
        return f"file not patched: {e}"
    return f"{res.file} patched" + (f" (commit {commit[:12]})" if commit else "")


async def act_proposal(ctx: Any, store: ProposalStore, action: Action) -> Outcome:
    pid = int(action.params["id"])
    now = ctx.clock.now()
    try:
        row = store.get(pid)
    except KeyError:
        return Outcome(action, False, f"proposal {pid} no longer exists", permanent=True)
    if action.params["op"] == "close":
        store.set_state(pid, action.params["to"], action.reason, now)
        return Outcome(action, True, f"proposal {pid} {action.params['to']}")
    if row.state != "proposed":
        return Outcome(action, False, f"proposal {pid} is {row.state}", permanent=True)
    gen = ctx.desired.current
    res = gen.tree.resources.get(("Service", row.service)) if gen is not None else None
    if res is None:
        return Outcome(action, False, f"{row.service} is not declared", permanent=True)
    vetting = await vet_proposal(ctx, row, res.spec)
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
