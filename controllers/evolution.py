"""The evolution controller: reconciles ``Rollout`` resources.

observe: each Rollout's persisted state (store), whether its version is quarantined, the
candidate process (``CandidatePool``, controllers/evolution_candidates.py: run on an
operator-assigned backend port, PDEATHSIG like services),
paired synthetic probes that hit the baseline's and the candidate's backend ports at the same
moment (accumulated per rollout and phase), and the time, as an observed value.
diff (pure, ``controllers/evolution_plan.py``): ``staged_rollout.decide`` on the judge's
verdict over those samples → ``update`` (start, start the candidate, advance, commit),
``rollback``, or ``stop`` (a candidate a killed operator left behind; retiring the candidate).
act: each transition is one store transaction (state + event + quarantine) written before the
candidate is stopped or the gateway re-reads the weights, so a SIGKILLed operator resumes from
the recorded phase or its rollback, never half-applied. A rollback quarantines the version.
Candidates and their weights are published as ``ctx.subsystems["rollouts"]`` for the gateway.

Crash-resume: each candidate is recorded by identity (``evolution_candidates``). A restarted
operator finds a running rollout whose candidate another operator process started: it stops
that candidate if it still runs (``autonomous/evolution/resume.py``: stopped, not adopted)
and starts a fresh one for the persisted phase, so the gateway serves the phase's weight
again — or rolls the rollout back (policy ``rollout.on_operator_restart``).

Commit point: FULL's bake is the watch with the old version still running; a rollback up to
then only sets the candidate's weight to 0 (the old process never stopped). The commit records
it, patches the Service's desired state and keeps the candidate serving 100 % while the
services controller (the Service's owner) replaces the old process with the new version;
once that process is ready the candidate is retired (``retire`` event) and the gateway lists
only the Service's own process.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from autonomous.evolution.changelog import append_entry, entry
from autonomous.evolution.metrics_comparator import Samples
from autonomous.evolution.resume import find_orphan
from autonomous.evolution.staged_rollout import RolloutState, StagedRollout, weights
from autonomous.evolution.store import RolloutStore
from autonomous.evolution.update_set import UpdateSetStore
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.evolution.proposals import OPEN, ProposalStore
from autonomous.context import OperatorContext
from controllers.base import Action, Controller, Outcome
from controllers.evolution_candidates import Candidate, CandidatePool
from controllers.evolution_jobs import VettingJobs
from controllers.evolution_plan import RolloutObserved, plan, rollout_policy
from controllers.evolution_proposals import (ProposalObserved, act_proposal, apply_commit,
                                             plan_proposal, rollout_specs)
from controllers.evolution_status import report_rollouts
from controllers.evolution_vetting import restore_after_rollback

__all__ = ["CONTROLLERS", "EvolutionController", "RolloutObserved", "plan"]


class EvolutionController(Controller):
    name = "evolution"
    subsystem = "evolution"
    order = 16
    watches: tuple[str, ...] = ("desired.",)

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.rollouts = RolloutStore(ctx.store)
        self.proposals = ProposalStore(ctx.store)
        self.pool = CandidatePool(ctx.store, ctx.bus, ctx.clock, self.rollouts,
                                  ctx.data_dir / "logs" / "candidates")
        self.jobs = VettingJobs(ctx)  # proposals' checks, run in the background

    @property
    def candidates(self) -> dict[str, Candidate]:
        """The candidates published to the gateway (service → candidate)."""
        return self.pool.candidates

    @property
    def retiring(self) -> dict[str, Candidate]:
        """Candidates no longer routed to, stopped once the gateway has drained them."""
        return self.pool.retiring

    async def start(self) -> None:
        from autonomous.evolution.facade import EvolutionFacade

        (self.ctx.data_dir / "logs" / "candidates").mkdir(parents=True, exist_ok=True)
        self.ctx.subsystems.setdefault("evolution", EvolutionFacade(
            self.ctx.store, self.ctx.clock, self.ctx.desired, self.ctx.root))
        self.ctx.subsystems["rollouts"] = self.pool.candidates

    async def stop(self) -> None:
        await self.jobs.stop()
        await self.pool.close()

    def desired(self) -> Any:
        gen = self.ctx.desired.current
        if gen is None:
            return None
        specs = {r.name: r.spec for r in gen.tree.of_kind("Rollout")}
        specs |= rollout_specs(self.proposals.with_state("rolling_out"), gen.services)
        return specs, EvolutionPolicy.model_validate(self.ctx.policy()["evolution"])

    def _observe_proposals(self) -> tuple[ProposalObserved, ...]:
        gen = self.ctx.desired.current
        services = gen.services if gen is not None else {}
        quarantined = self.rollouts.quarantined()
        in_sets = {m.proposal_id for s in UpdateSetStore(self.ctx.store).open()
                   for m in s.members if m.proposal_id is not None}
        out = []
        for row in self.proposals.with_state(*OPEN):
            svc = services.get(row.service)
            latest = self.rollouts.latest(row.service, row.version)
            out.append(ProposalObserved(
                row, svc is not None, svc.version if svc is not None else None,
                svc is not None and svc.traffic is not None,
                (row.service, row.version) in quarantined,
                latest[1].status if latest is not None else None,
                self.jobs.observed(row.id) if row.state == "vetting" else None,
                row.id in in_sets))
        return tuple(out)

    async def observe(self) -> tuple[RolloutObserved | ProposalObserved, ...]:
        return await self._observe_rollouts() + self._observe_proposals()

    async def _observe_rollouts(self) -> tuple[RolloutObserved, ...]:
        d = self.desired()
        if d is None:
            return ()
        specs, policy = d
        spacing = policy.judge.min_round_interval_seconds
        gen = self.ctx.desired.current
        services = gen.services if gen is not None else {}
        quarantined = self.rollouts.quarantined()
        intents = UpdateSetStore(self.ctx.store).intents()
        records = self.rollouts.candidates()
        out = []
        for name, spec in sorted(specs.items()):
            svc = services.get(spec.service)
            base_port = svc.port if svc is not None else None
            latest = self.rollouts.latest(spec.service, spec.to_version)
            rid, state = latest if latest else (None, None)
            c = self.pool.candidates.get(spec.service)
            running = self.pool.running(spec.service, spec.to_version)
            if c is not None and state is not None and c.phase_index != state.phase_index:
                c.reset_samples()
                c.phase_index = state.phase_index
            if running and c is not None and base_port is not None and state is not None \
                    and state.status == "running":
                await self.pool.sample(c, base_port, spec, spacing)
            base = Samples.of(c.lat["base"], c.err["base"]) if c else Samples.of([])
            cand = Samples.of(c.lat["cand"], c.err["cand"]) if c else Samples.of([])
            rec = records.get(rid) if rid is not None else None
            resumed = rec is not None and rec.operator_pid != os.getpid()
            orphan = (await asyncio.to_thread(find_orphan, rec)
                      if rec is not None and resumed else None)
            asked, rejected = (self._promotion_requests(name, state)
                               if state is not None and state.status == "running"
                               else (None, None))
            out.append(RolloutObserved(name, spec, base_port, rid, state,
                                       (spec.service, spec.to_version) in quarantined,
                                       running, base, cand, self.ctx.clock.now(),
                                       tuple(c.rounds) if c else (), resumed, orphan,
                                       rec is not None, self._successor_ready(rid, state, svc),
                                       spec.service in self.pool.retiring,
                                       await self.pool.drained(
                                           spec.service, self.ctx.subsystems.get("gateway")),
                                       *intents.get((spec.service, spec.to_version),
                                                    (False, None)),
                                       promotion_asked_at=asked,
                                       promotion_rejected=rejected,
                                       in_set=(spec.service, spec.to_version) in intents))
        return tuple(out)

    def _promotion_requests(self, name: str, state: RolloutState
                            ) -> tuple[float | None, str | None]:
        """This phase's advance or commit requests: (when a human was first asked and has not
        answered — pending, or expired and asked again; who rejected it and why)."""
        asked = [a for a in self.ctx.approvals.asked(
            controller=self.name, resource=f"Rollout/{name}", since=state.phase_started_at)
            if a["action"].get("params", {}).get("op") in ("advance", "commit")
            and a["action"]["params"].get("phase") == state.phase_index]
        no = next((a for a in asked if a["state"] == "rejected"), None)
        if no is not None:
            return None, f"{no['decided_by']}" + (f": {no['reason']}" if no["reason"] else "")
        return (float(asked[0]["_created_at"]) if asked else None), None

    def _withdraw_superseded(self, resource: str, new: RolloutState) -> None:
        """Pending approvals asked for a phase this rollout has left (or for a rollout that
        ended) can no longer be done: withdrawn, so nobody approves a stale question."""
        for a in self.ctx.approvals.asked(controller=self.name, resource=resource, since=0.0):
            phase = a["action"].get("params", {}).get("phase")
            if a["state"] == "pending" and (new.status != "running" or (
                    phase is not None and phase != new.phase_index)):
                self.ctx.approvals.cancel(a["id"], f"rollout {new.status}, phase "
                                          f"{new.phase_index}: no longer needed")

    def _successor_ready(self, rid: int | None, state: RolloutState | None,
                         svc: Any) -> bool | None:
        """After the commit: does the Service's own process (the services controller's) run
        ``to_version``, started after the commit, and answer ready?"""
        owner = self.ctx.subsystems.get("services")
        if rid is None or state is None or state.status != "committed" or owner is None:
            return None
        if svc is None or svc.version != state.to_version:
            return False
        o = owner.observed().get(state.service)
        committed_at = self.rollouts.updated_at(rid)
        return bool(o and o["running"] and o["ready"] and committed_at is not None
                    and o["started_at"] >= committed_at)

    @staticmethod
    def diff(desired: Any, observed: tuple[RolloutObserved | ProposalObserved, ...]
             ) -> tuple[Action, ...]:
        if desired is None:
            return ()
        _, policy = desired
        return tuple(a for o in observed for a in (
            plan(o, policy) if isinstance(o, RolloutObserved) else plan_proposal(o)))

    @staticmethod
    def requeue_after(desired: Any, observed: tuple[RolloutObserved | ProposalObserved, ...]
                      ) -> float | None:
        """While a rollout's phase is being judged: the next pass (a paired probe round, the
        judge's verdict) in ``judge.round_interval_seconds``, not the controller's interval — a
        phase needs ``min_rounds`` rounds, one per pass. A phase whose promotion waits for a
        human is watched at the controller's interval (its samples would only pile up)."""
        if desired is None:
            return None
        judging = any(isinstance(o, RolloutObserved) and o.state is not None
                      and o.state.status == "running" and o.promotion_asked_at is None
                      for o in observed)
        return desired[1].judge.round_interval_seconds if judging else None

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:
        if desired is None:
            return
        report_rollouts(self.ctx, [o for o in observed if isinstance(o, RolloutObserved)],
                        desired[1], outcomes)

    async def _retire(self, action: Action, rid: int, state: RolloutState,
                      now: float) -> Outcome:
        """Past the commit point (or after a rollback): the candidate is stopped and no
        longer on record; the gateway then lists only the Service's own process."""
        c = self.pool.retiring.get(state.service) or self.pool.candidates.get(state.service)
        port = c.port if c is not None else None
        await self.pool.stop(state.service)
        orphan = await self.pool.end_orphan(rid)
        self.rollouts.forget_candidate(rid)
        self._withdraw_superseded(action.resource, state)  # e.g. ended through the API
        ev: dict[str, Any] = {"candidate_port": port, "orphan_stopped": orphan,
                              "status": state.status}
        if state.status == "rolled_back":  # the candidate is gone: put the data back
            name = action.resource.split("/", 1)[1]
            data = await restore_after_rollback(self.ctx, name, state.service, action.reason)
            if data is not None:
                ev["data_restore"] = data
        self.rollouts.note(rid, "retire", state.phase_index, action.reason, now, ev)
        self.ctx.bus.publish("evolution.rollout", service=state.service, status=state.status,
                             phase=state.phase_index)
        return Outcome(action, True, f"candidate of rollout {rid} retired ({state.status})")

    def _announce(self, rid: int, state: RolloutState, op: str, reason: str,
                  evidence: dict[str, Any], now: float) -> None:
        """One notification per state change (the alert channels, through ``alert.human``),
        and a changelog entry when the rollout ends."""
        self.ctx.bus.publish("alert.human", source="evolution", service=state.service,
                             severity="warning" if state.status == "rolled_back" else "info",
                             reason=f"rollout {rid} {op}: {state.status}, phase "
                                    f"{state.phase_index}",
                             message=f"{state.service} {state.from_version} → "
                                     f"{state.to_version}: {op} ({reason})")
        if state.status in ("committed", "rolled_back"):
            append_entry(self.ctx.data_dir / "evolution" / "CHANGELOG.md", rid, entry(
                rid, state.service, state.from_version, state.to_version, state.status,
                reason, evidence, now))

    async def act(self, action: Action) -> Outcome:
        if action.params.get("op") in ("propose", "close", "vetted", "revet"):
            return await act_proposal(self.ctx, self.proposals, self.jobs, action)
        d = self.desired()
        name = action.resource.split("/", 1)[1]
        if d is None or name not in d[0]:
            return Outcome(action, False, f"{action.resource} no longer desired", permanent=True)
        spec, policy = d[0][name], d[1]
        rp = rollout_policy(spec, policy)
        engine = StagedRollout(rp, self.rollouts.quarantined())
        now = self.ctx.clock.now()
        op = action.params.get("op")
        try:
            if op == "start":
                state = engine.start_rollout(spec.service, spec.from_version, spec.to_version,
                                             now)
                rid = self.rollouts.create(state, now)
                self._announce(rid, state, "start", action.reason, {}, now)
                port = await self.pool.start(rid, spec, state, rp)
                return Outcome(action, True, f"rollout started; candidate on port {port}")
            latest = self.rollouts.latest(spec.service, spec.to_version)
            if op == "retire" and latest is not None:
                return await self._retire(action, *latest, now)
            if op == "unpublish" and latest is not None:
                self.pool.unpublish(spec.service)
                return Outcome(action, True, "candidate no longer routed to by the gateway")
            if latest is None or latest[1].status != "running":
                return Outcome(action, False, "no running rollout", permanent=True)
            rid, state = latest
            if op == "candidate":
                port = await self.pool.start(rid, spec, state, rp)
                return Outcome(action, True, f"candidate restarted on port {port}")
            if op == "orphan":
                pid = await self.pool.end_orphan(rid)
                self.rollouts.note(rid, "orphan", state.phase_index, action.reason, now,
                                   {"pid": action.params.get("pid"), "stopped": pid})
                return Outcome(action, True, f"left-over candidate pid {pid} stopped"
                               if pid is not None else "left-over candidate already gone")
            if op == "rollback":
                new = engine.rollback_phase(state, action.reason)
            elif op in ("advance", "commit"):
                new = engine.advance_phase(state, now)
            else:
                return Outcome(action, False, f"unknown op {op!r}", permanent=True)
            ev = dict(action.evidence)
            if new.status == "committed":  # the desired state follows the committed version
                ev["desired_state"] = apply_commit(self.ctx, spec)
            self.rollouts.transition(rid, new, str(op), action.reason, now, ev)
            self._withdraw_superseded(action.resource, new)
            self.ctx.trigger("evolution_sets")  # a member's phase or end moves its set on
            if action.params.get("quarantine") is False:  # aborted by its set: not its fault
                self.rollouts.clear_quarantine(spec.service, spec.to_version)
            if new.status == "rolled_back":  # the old version never stopped serving
                self.pool.unpublish(spec.service)  # stopped once the gateway no longer routes
                await self.pool.end_orphan(rid)  # a killed operator's: this gateway never had it
            elif (c := self.pool.candidates.get(spec.service)) is not None:
                # running: the next phase's share; committed: 100 % until retired
                c.weight, c.device_version = weights(new, rp)
            self.ctx.bus.publish("evolution.rollout", service=spec.service, status=new.status,
                                 phase=new.phase_index)
            self._announce(rid, new, str(op), action.reason, ev, now)
            return Outcome(action, True, f"{op}: {new.status}, phase {new.phase_index}")
        except (OSError, RuntimeError, ValueError) as e:
            return Outcome(action, False, f"{op} failed: {e}")


CONTROLLERS = [EvolutionController]
