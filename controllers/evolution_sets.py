"""The update-set controller: several services updated as one ordered, all-or-nothing set.

observe: each open set (``autonomous/evolution/update_set.py``), and for each member its
proposal's state and its rollout's status and phase (the evolution controller's store), and
the index of the FULL phase from the policy.
diff (pure, :func:`plan_set`): member i's proposal is made only once member i-1's rollout
reached FULL (still running: its commit is held); when the last member reached FULL the
commits are released together; governed asks twice per set, at its start (``update``: the
decision to update these services) and at the release of the commits (``update``: the point
of no return), and at each member's phase promotions; the steps between carry those
decisions out or record them (``proceed``: the next member, its proposal, its checks, its
rollout's start, each member's released commit, the set closed); a member's failure turning
the set to rolling back, and each promoted member rolled back, are ``rollback`` (asked in
governed, per policy); when any member rolls back, every member already promoted is
rolled back in reverse order (an abort request its rollout's owner carries out), then the set
ends ``rolled_back`` naming the failing member.
act: only data — proposals, the set's rows and the per-member hold/abort flags. The
evolution controller owns rollouts, candidates and (through the gateway) traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonomous.evolution.proposals import ProposalStore
from autonomous.evolution.store import RolloutStore
from autonomous.evolution.update_set import SetRow, UpdateSetFacade, UpdateSetStore
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.context import OperatorContext
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "MemberObserved", "SetObserved", "UpdateSetController", "plan_set"]


@dataclass(frozen=True)
class MemberObserved:
    proposal_state: str | None
    rollout_status: str | None  # running, committed, rolled_back (None: not started)
    phase_index: int | None
    reason: str = ""


@dataclass(frozen=True)
class SetObserved:
    row: SetRow
    members: tuple[MemberObserved, ...]
    full_index: int


def _failed(m: MemberObserved) -> bool:
    return m.rollout_status == "rolled_back" or m.proposal_state in ("rolled_back", "failed")


def _at_full(m: MemberObserved, full_index: int) -> bool:
    return m.rollout_status == "running" and m.phase_index is not None \
        and m.phase_index >= full_index


def plan_set(o: SetObserved) -> tuple[Action, ...]:
    """Pure: the next action for one set (at most one), or none."""
    s, res = o.row, f"UpdateSet/{o.row.id}"
    started = [i for i, m in enumerate(s.members) if m.status == "rolling"]
    if s.state in ("pending", "rolling", "committing"):
        for i in started:
            if _failed(o.members[i]) and s.members[i].abort_reason is None:
                why = (f"member {i} ({s.members[i].service} {s.members[i].to_version}) "
                       f"rolled back: {o.members[i].reason}")
                # the set's decision to roll back (governed asks, per policy)
                return (Action("rollback", res, why, params={"op": "fail", "index": i},
                               evidence={"service": s.members[i].service}),)
    if s.state == "pending":  # the set's one decision to update (governed asks here)
        what = ", ".join(f"{m.service} {m.from_version} → {m.to_version}" for m in s.members)
        return (Action("update", res, f"start update set {s.id} ({what}): member 0 "
                       f"({s.members[0].service})", params={"op": "member", "index": 0}),)
    if s.state == "rolling":
        i = s.current_index
        if not _at_full(o.members[i], o.full_index):
            return ()
        if i + 1 < len(s.members):  # proceed: the set was let through as a whole
            return (Action("proceed", res, f"member {i} ({s.members[i].service}) reached FULL; "
                           f"start member {i + 1} ({s.members[i + 1].service})",
                           params={"op": "member", "index": i + 1}),)
        # the set's commit point, a decision (governed asks); each member's commit follows it
        return (Action("update", res, "every member reached FULL: release the commits",
                       params={"op": "commit"}),)
    if s.state == "committing":
        if all(m.rollout_status == "committed" for m in o.members):
            return (Action("proceed", res, "every member committed", params={"op": "done"}),)
        return ()
    if s.state == "rolling_back":
        for i in reversed(started):  # reverse order: the newest promotion first
            if o.members[i].rollout_status == "running":
                if s.members[i].abort_reason is not None:
                    return ()  # asked; wait for its rollback
                return (Action("rollback", res, f"roll member {i} ({s.members[i].service}) "
                               f"back: {s.reason}", params={"op": "abort", "index": i}),)
        return (Action("proceed", res, f"every promoted member rolled back: {s.reason}",
                       params={"op": "finish"}),)
    return ()


class UpdateSetController(Controller):
    name = "evolution_sets"
    subsystem = "evolution"
    order = 17
    watches: tuple[str, ...] = ("desired.",)

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.sets = UpdateSetStore(ctx.store)
        self.rollouts = RolloutStore(ctx.store)
        self.proposals = ProposalStore(ctx.store)

    def _services(self) -> dict[str, Any]:
        gen = self.ctx.desired.current
        return dict(gen.services) if gen is not None else {}

    async def start(self) -> None:
        self.ctx.subsystems.setdefault("update_sets", UpdateSetFacade(
            self.ctx.store, self.ctx.clock, self._services, self.rollouts.quarantined))

    def desired(self) -> Any:
        pol = EvolutionPolicy.model_validate(self.ctx.policy()["evolution"])
        names = [p.name for p in pol.rollout.phases]
        return names.index("FULL") if "FULL" in names else len(names) - 1

    async def observe(self) -> tuple[SetObserved, ...]:
        full = self.desired()
        out = []
        for s in self.sets.open():
            ms = []
            for m in s.members:
                prop = None
                if m.proposal_id is not None:
                    try:
                        prop = self.proposals.get(m.proposal_id)
                    except KeyError:
                        prop = None
                latest = self.rollouts.latest(m.service, m.to_version) \
                    if m.status != "pending" else None
                st = latest[1] if latest is not None else None
                ms.append(MemberObserved(prop.state if prop else None,
                                         st.status if st else None,
                                         st.phase_index if st else None,
                                         (st.reason if st and st.reason else
                                          prop.reason if prop else "")))
            out.append(SetObserved(s, tuple(ms), full))
        return tuple(out)

    @staticmethod
    def diff(desired: Any, observed: tuple[SetObserved, ...]) -> tuple[Action, ...]:
        return tuple(a for o in observed for a in plan_set(o))

    async def act(self, action: Action) -> Outcome:
        sid = int(action.resource.split("/", 1)[1])
        try:
            s = self.sets.get(sid)
        except KeyError:
            return Outcome(action, False, f"{action.resource} no longer exists",
                           permanent=True)
        now = self.ctx.clock.now()
        op = action.params.get("op")
        if op == "member":
            i = int(action.params["index"])
            m = s.members[i]
            row, _ = self.proposals.add(m.service, m.from_version, m.to_version,
                                        f"update set {sid} member {i}", m.command, now)
            self.sets.start_member(sid, i, row.id, now)
            self.ctx.trigger("evolution")
        elif op == "commit":
            self.sets.release_commits(sid, now)
            self.ctx.trigger("evolution")
        elif op == "done":
            for m in s.members:
                self.sets.set_member(sid, m.idx, status="committed")
            self.sets.set_state(sid, "done", "every member committed, in order", now)
        elif op == "fail":
            i = int(action.params["index"])
            self.sets.set_member(sid, i, status="rolled_back")
            self.sets.set_state(sid, "rolling_back", action.reason, now,
                                failed_member=s.members[i].service)
        elif op == "abort":
            i = int(action.params["index"])
            self.sets.set_member(sid, i, abort_reason=f"update set {sid}: {s.reason}")
            self.ctx.trigger("evolution")
        elif op == "finish":
            for m in s.members:
                if m.status == "pending":
                    self.sets.set_member(sid, m.idx, status="skipped")
                elif m.status == "rolling":
                    self.sets.set_member(sid, m.idx, status="aborted")
            self.sets.set_state(sid, "rolled_back", s.reason, now)
        else:
            return Outcome(action, False, f"unknown op {op!r}", permanent=True)
        self.ctx.bus.publish("evolution.update_set", id=sid, op=op)
        self.ctx.trigger(self.name)  # its next step is planned now, not at the next interval
        return Outcome(action, True, f"update set {sid}: {op}")


CONTROLLERS = [UpdateSetController]
