"""The healing controller's act: what each Action of its diff (and each ladder step through
the Executor) does in the engine (``controllers/healing.py`` observes and diffs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autonomous.self_healing.model import STRATEGY_ACTION, RecoveryStrategy
from controllers.base import Action, Outcome
from controllers.healing_diff import BRAKE_REASON, BRAKE_SERVICE, isolate_action

if TYPE_CHECKING:
    from controllers.healing import HealingController

__all__ = ["carry_out"]


async def carry_out(ctl: HealingController, action: Action) -> Outcome:
    """A step of an incident's ladder (``params.strategy``), or one of diff's actions."""
    if ctl.orch is None:
        return Outcome(action, False, "the healing engine is not running", permanent=True)
    orch = ctl.orch
    name = str(action.params.get("service", action.resource.split("/", 1)[-1]))
    if action.kind == "close_incident" and "incident" in action.params:
        inc = orch.pending.get(str(action.params["incident"]))
        if inc is None:
            return Outcome(action, True, f"incident {action.params['incident']} no longer "
                           "awaits approval: nothing to close")
        orch.rec.finish(inc, "closed", action.reason)
        return Outcome(action, True, action.reason)
    if action.kind == "close_incident":
        n = orch.close_service(name, action.reason)
        return Outcome(action, True, f"closed {n} incident(s) of {name}: {action.reason}")
    if action.kind == "alert_human" and "brake" in action.params:
        if action.params["brake"] == "release":
            n = orch.alerts.resolve(BRAKE_SERVICE, action.reason)
            return Outcome(action, True, f"global brake released ({n} alert resolved)")
        alert = orch.alerts.raise_alert(BRAKE_SERVICE, BRAKE_REASON, {
            "severity": "critical", "message": action.reason,
            "services": action.params["services"], "limit": action.params["limit"]})
        return Outcome(action, True, f"a human is alerted: {action.reason}",
                       details={"alert": alert["id"] if alert else None})
    if action.kind == "release":
        n = orch.release_for_revision(name, action.reason)
        return Outcome(action, True, f"released {name}; closed {n} incident(s)")
    if action.kind in ("resume", "settle"):
        # resume: an incident whose approval was decided goes on; settle: the observed
        # verdict of its step in flight is recorded (healed, or the next step starts)
        iid, resume = str(action.params["incident"]), action.kind == "resume"
        inc = (orch.pending if resume else orch.incidents).get(iid)
        if inc is None or (not resume and inc.run is None):
            return Outcome(action, True, f"incident {iid} "
                           f"{'no longer awaits approval' if resume else 'has no step in flight'}"
                           f": nothing to {action.kind}")
        await (orch.service.resume(inc) if resume else orch.runner.settle(inc))
        return Outcome(action, True, f"incident {inc.id} {action.kind}d: {inc.state}"
                       f"{'' if resume else f' ({inc.message})'}", details={"state": inc.state})
    if action.kind == "recover":
        undone = await orch.restore(name)
        if not undone.get("restored"):
            return Outcome(action, True, f"{name}: not undone now (a heal of it runs); "
                           "looked at again next pass")
        return Outcome(action, True, f"{name}: degraded mode and fallback undone",
                       details={k: v for k, v in undone.items() if k != "restored"})
    if action.kind == "reset_restarts":
        n = orch.crashloop.reset_restarts(name)
        return Outcome(action, True, f"{name}: {n} counted restart(s) forgiven")
    if action.kind == "hold":
        it = orch.processes.pause(name, f"self-healing: {action.reason}",
                                  incident=str(action.params["incident"]))
        return Outcome(action, True, f"{name} is kept stopped (intent {it.id}) while "
                       f"approval {action.params.get('approval')} is decided")
    if action.kind == "backoff":
        if not orch.crashloop.enter_planned(name, float(action.params["delay_seconds"])):
            return Outcome(action, True, f"{name} is already in "
                           f"{orch.state(name).phase}: nothing to do")
        return Outcome(action, True, f"{name}: {orch.state(name).reason}",
                       details={"next_try_at": orch.state(name).next_at})
    if action.kind == "retry" and "strategy" not in action.params:
        if not action.params.get("settle"):  # start it; its verification is observed
            nxt = action.params.get("next_delay_seconds")
            started = orch.crashloop.start_try(name, str(action.params["on_failure"]),
                                               None if nxt is None else float(nxt))
            return Outcome(action, True, f"{action.params.get('phase')} try of {name}: "
                           f"{started.message}")
        got = orch.crashloop.settle(name)
        details: dict[str, Any] = {"healthy": got.healthy}
        due = orch.state(name).isolate_due
        if got.healthy is False and due is not None:
            # what the diff planned for this failure (and plans on later passes until it
            # is done): isolation + a human, its own action; kept stopped meanwhile
            gen = ctl.ctx.desired.current
            iso = await ctl.executor.execute(ctl, isolate_action(name, due),
                                              gen.number if gen else 0)
            details["isolation"] = iso.message
        # the try was made; whether it healed is the crash-loop's verdict (its own
        # growing delay schedules the next), not a failed action to back off
        verdict = "not settled" if got.healthy is None else \
            "healthy again" if got.healthy else "still failing"
        return Outcome(action, True, f"{got.was} try of {name}: {verdict} "
                       f"({got.message})", details=details)
    if action.kind == "isolate" and action.params.get("crashloop"):
        msg = await orch.crashloop.isolate(name, str(action.evidence.get("was")),
                                           str(action.evidence.get("message")))
        return Outcome(action, True, msg)
    strategy = RecoveryStrategy(action.params["strategy"])
    if STRATEGY_ACTION[strategy] != action.kind:
        return Outcome(action, False, f"{strategy.value} is not a {action.kind} action",
                       permanent=True)
    chain = ctl.executor.chain_of(ctl, action)
    res = await orch.run_step(strategy, str(action.params["incident"]),
                              chain[1] if len(chain) > 1 else None)
    if res is None:  # started: its verification is observed by the following passes
        return Outcome(action, True, f"{strategy.value} started; its verification is "
                       "observed", details={"strategy": strategy.value, "started": True})
    if not res.applicable:  # skipped, not failed: no back-off for what could not apply
        return Outcome(action, True, f"not applicable: {res.message}", details={
            "strategy": strategy.value, "applicable": False, "ok": res.ok})
    return Outcome(action, res.ok, res.message, details={"strategy": strategy.value,
                                                         "applicable": True})
