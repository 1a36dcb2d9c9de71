"""The resilience controller: survival mode, scheduled backups and retention.

start: registers ``ctx.subsystems["resilience"]`` (:class:`ResilienceFacade`).
observe: governance mode, the persisted survival state, resource pressure (how long it has
been above the automatic-survival enter thresholds, or below the exit ones), and per
``BackupPlan`` the last successful backup, backups since the last full one, and the plan's
backups in the repository, and the open restore requests.
diff (pure): ``survival`` enter when the mode is ``emergency_stop`` or pressure held long
enough (``auto``); exit when the reason that entered it is gone (mode left
``emergency_stop``; pressure below the exit thresholds long enough — hysteresis). ``backup``
per plan whose schedule is due (full every ``full_every``th, else incremental; a plan never
backed up is due ``first_after_seconds`` after the operator started) and ``backup``
``prune`` when retention would forget backups; ``restore`` per open restore request (the
API only records the request: the restore runs here, behind the governance gate — with
``restore: require_approval`` it waits for ``atlas-autonomous approvals approve <id>``).
act: carries them out through the facade (backups and restores in a worker thread). Survival
asks for features off with ``degrade`` intents; their one owner (``controllers/features.py``)
keeps them off — also after a kept service restarts with every feature on.
"""

from __future__ import annotations

from typing import Any

from autonomous.core.conditions import HealthStatus, SyncStatus
from autonomous.intents import IntentStore
from autonomous.backup.manifest import list_manifests
from autonomous.backup.retention import select_kept
from autonomous.resilience.facade import ResilienceFacade
from autonomous.resilience.resource_throttler import context_reader
from autonomous.context import OperatorContext
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "PressureTracker", "ResilienceController"]


class PressureTracker:
    """Since when readings have been continuously above the enter thresholds (any resource)
    or continuously below the exit thresholds (every resource)."""

    def __init__(self) -> None:
        self.above_since: float | None = None
        self.below_since: float | None = None

    def update(self, now: float, reading: dict[str, float | None], auto: dict[str, Any]
               ) -> dict[str, Any]:
        keys = ("cpu_percent", "ram_percent")
        above = any(reading.get(k) is not None and reading[k] >= auto["enter"][k] for k in keys)
        below = all(reading.get(k) is None or reading[k] < auto["exit"][k] for k in keys)
        self.above_since = (self.above_since if self.above_since is not None else now) \
            if above else None
        self.below_since = (self.below_since if self.below_since is not None else now) \
            if below else None
        return {**{k: reading.get(k) for k in keys},
                "above_for": None if self.above_since is None else now - self.above_since,
                "below_for": None if self.below_since is None else now - self.below_since}


class ResilienceController(Controller):
    name = "resilience"
    subsystem = "resilience"
    order = 50
    watches = ("governance.", "health.")

    def __init__(self, ctx: OperatorContext) -> None:
        super().__init__(ctx)
        self.facade = ResilienceFacade(ctx)
        self.intents = IntentStore(ctx.store, ctx.clock, ctx.bus)  # survival asked via the API
        self.pressure = PressureTracker()
        self.reader = context_reader(ctx)
        self.started_mono = ctx.clock.monotonic()
        self.verified: dict[str, float] = {}  # plan -> when its latest backup was verified

    async def start(self) -> None:
        self.started_mono = self.ctx.clock.monotonic()
        self.ctx.subsystems["resilience"] = self.facade

    async def stop(self) -> None:
        if self.ctx.subsystems.get("resilience") is self.facade:
            del self.ctx.subsystems["resilience"]

    def desired(self) -> dict[str, Any]:
        pol = self.ctx.policy()["resilience"]
        return {"auto": pol["survival"]["auto"], "plans": self.facade.plans(),
                "verify_every": pol["backup"]["verify_every_seconds"]}

    async def observe(self) -> dict[str, Any]:
        pol = self.ctx.policy()["resilience"]
        r = self.reader()
        reading = {"cpu_percent": r.cpu_percent, "ram_percent": r.ram_percent}
        return {"mode": self.ctx.governance.mode, "survival": self.facade.survival.state(),
                "pressure": self.pressure.update(self.ctx.clock.monotonic(), reading,
                                                 pol["survival"]["auto"]),
                "now": self.ctx.clock.now(), "plans": self._plans(),
                "up_for": self.ctx.clock.monotonic() - self.started_mono,
                "restores": self.facade.restores.open(),
                "verified": dict(self.verified),
                "survival_requests": [i.as_dict() for i in self.intents.active(
                    "SurvivalProfile/survival", ("survival_requested",))]}

    def _plans(self) -> dict[str, Any]:
        out = {}
        for name in self.facade.plans():
            rows = self.ctx.store.query("SELECT kind, started_at FROM backup_runs WHERE plan=? "
                                        "AND ok=1 ORDER BY started_at DESC", (name,))
            since_full = next((i for i, r in enumerate(rows) if r["kind"] == "full"), len(rows))
            repo = self.facade.recovery(name).repo
            out[name] = {"last": rows[0]["started_at"] if rows else None,
                         "since_full": since_full, "has_full": since_full < len(rows),
                         "backups": list_manifests(repo, name)}
        return out

    @staticmethod
    def diff(desired: Any, observed: Any) -> tuple[Action, ...]:
        """Pure: survival enter/exit and due backups / prunes (see the module docstring)."""
        return (*_survival_actions(desired["auto"], observed),
                *_backup_actions(desired["plans"], observed),
                *_restore_actions(observed),
                *_verify_actions(desired.get("verify_every"), observed))

    async def act(self, action: Action) -> Outcome:
        p = action.params
        try:
            if action.kind == "survival":
                fn = (self.facade.enter_survival_mode if p["op"] == "enter"
                      else self.facade.exit_survival_mode)
                state = await fn(str(p.get("reason", action.reason)),
                                 actor=str(p.get("actor", "resilience-controller")),
                                 source=p["source"])
                out = Outcome(action, True, f"survival {'active' if state['active'] else 'off'}",
                              details={"errors": state.get("errors", [])})
                if p.get("intent"):
                    self.intents.consume(str(p["intent"]), out.message)
                return out
            if p["op"] == "restore":
                return await self._restore(action)
            if p["op"] == "verify":
                rep = await self.facade.scheduled_verify(p["plan"], p["backup"])
                self.verified[p["plan"]] = self.ctx.clock.now()
                return Outcome(action, True, f"backup {p['backup']} "
                               f"{'intact' if rep['ok'] else 'DAMAGED'}",
                               details={k: rep.get(k) for k in ("ok", "damaged_chunks",
                                                                "alert", "resolved")})
            if p["op"] == "prune":
                pruned = await self.facade.prune(p["plan"])
                return Outcome(action, True, f"forgot {len(pruned['forgotten'])} backups, "
                               f"removed {pruned['chunks_removed']} chunks", details=pruned)
            made = await self.facade.backup(p["plan"], p["kind"])
            return Outcome(action, True, f"{made['kind']} backup {made['id']}: "
                           f"{made['files']} files",
                           details={"id": made["id"], "stats": made["stats"]})
        except Exception as exc:  # noqa: BLE001 - the manager retries with backoff
            return Outcome(action, False, f"{type(exc).__name__}: {exc}")

    async def _restore(self, action: Action) -> Outcome:
        p = action.params
        try:
            out = await self.facade.restore(p["backup"], p["target"])
        except Exception as exc:  # noqa: BLE001 - recorded on the request, not retried
            self.facade.restores.update(p["request"], "failed", error_kind=type(exc).__name__,
                                        result={"error": str(exc)})
            return Outcome(action, False, f"{type(exc).__name__}: {exc}", permanent=True)
        self.facade.restores.update(p["request"], "done", result=out)
        return Outcome(action, True, f"restored {out.get('files')} files into {p['target']}",
                       details={"target": str(out.get("target", p["target"]))})

    def _settle_gated(self, outcomes: list[Outcome]) -> None:
        """Restore and survival requests the gate held back: waiting for a human, rejected,
        or dry-run."""
        for o in outcomes:
            intent = o.action.params.get("intent") if o.action.kind == "survival" else None
            if intent and o.ok and o.details:
                d = o.details
                if d.get("pending"):
                    self.intents.note(str(intent), f"awaiting approval {d['approval']}")
                elif d.get("rejected") or d.get("dry_run"):
                    self.intents.expire(str(intent), o.message)
                continue
            if o.action.kind != "restore" or not o.ok:
                continue
            rid, d = o.action.params["request"], o.details
            if d.get("pending"):
                self.facade.restores.update(rid, "awaiting_approval", approval=d["approval"])
            elif d.get("rejected") or d.get("dry_run"):
                self.facade.restores.update(rid, "rejected" if d.get("rejected") else "dry_run",
                                            result={"message": o.message})

    def report(self, desired: Any, observed: Any, outcomes: list[Outcome]) -> None:
        self._settle_gated(outcomes)
        now = self.ctx.clock.now()
        s = observed["survival"]
        for req in observed.get("survival_requests", ()):
            if (req["params"].get("op") == "enter") == bool(s["active"]):
                self.intents.consume(req["id"], f"survival already "
                                     f"{'active' if s['active'] else 'off'}")
        st = self.ctx.status.resource(self.name, "SurvivalProfile", "survival")
        st.sync, st.health = SyncStatus.SYNCED, (HealthStatus.DEGRADED if s["active"]
                                                 else HealthStatus.HEALTHY)
        st.details = {"survival": s, "pressure": observed["pressure"]}
        st.set_condition("SurvivalActive", bool(s["active"]),
                         "Entered" if s["active"] else "Inactive",
                         s.get("reason", "") if s["active"] else "all services and features on",
                         now)
        for name, plan in observed["plans"].items():
            b = self.ctx.status.resource(self.name, "BackupPlan", name)
            b.sync = SyncStatus.SYNCED
            b.health = HealthStatus.HEALTHY if plan["last"] else HealthStatus.UNKNOWN
            b.details = {"last_backup_at": plan["last"], "backups": len(plan["backups"])}
            b.set_condition("BackedUp", plan["last"] is not None,
                            "Recent" if plan["last"] else "NoBackupYet",
                            f"{len(plan['backups'])} backups in the repository", now)


def _survival_actions(auto: dict[str, Any], observed: dict[str, Any]) -> list[Action]:
    s, mode, pr = observed["survival"], observed["mode"], observed["pressure"]
    res = "SurvivalProfile/survival"
    for req in observed.get("survival_requests", ()):  # asked for through the API
        op = req["params"].get("op")
        if (op == "enter") != bool(s["active"]):
            actor = req["params"].get("actor", "api")
            return [Action("survival", res, f"requested by {actor} through the API: "
                           f"{req['reason']}", {"op": op, "source": "api", "intent": req["id"],
                                                "actor": actor, "reason": req["reason"]},
                           {"request": req["id"]})]
    if not s["active"]:
        if mode == "emergency_stop":
            return [Action("survival", res, "governance mode is emergency_stop",
                           {"op": "enter", "source": "governance"}, {"mode": mode})]
        if auto["enabled"] and pr["above_for"] is not None and \
                pr["above_for"] >= auto["enter_after_seconds"]:
            return [Action("survival", res, _pressure_text(pr, auto, "enter"),
                           {"op": "enter", "source": "auto"}, dict(pr))]
        return []
    if s.get("source") == "governance" and mode != "emergency_stop":
        return [Action("survival", res, f"governance mode is {mode}, no longer emergency_stop",
                       {"op": "exit", "source": "governance"}, {"mode": mode})]
    if s.get("source") == "auto" and mode != "emergency_stop" and pr["below_for"] is not None \
            and pr["below_for"] >= auto["exit_after_seconds"]:
        return [Action("survival", res, _pressure_text(pr, auto, "exit"),
                       {"op": "exit", "source": "auto"}, dict(pr))]
    return []


def _pressure_text(pr: dict[str, Any], auto: dict[str, Any], op: str) -> str:
    held = pr["above_for"] if op == "enter" else pr["below_for"]
    limits = auto[op]
    rel = ">=" if op == "enter" else "<"
    return (f"resource pressure: cpu {pr['cpu_percent']}% ram {pr['ram_percent']}% "
            f"({rel} cpu {limits['cpu_percent']:g}% / ram {limits['ram_percent']:g}%) "
            f"for {held:.0f} s")


def _backup_actions(plans: dict[str, Any], observed: dict[str, Any]) -> list[Action]:
    out: list[Action] = []
    for name, spec in sorted(plans.items()):
        seen = observed["plans"].get(name)
        if seen is None:
            continue
        sched = spec.get("schedule")
        if sched is None:
            due = False
        elif seen["last"] is None:
            due = observed["up_for"] >= sched["first_after_seconds"]
        else:
            due = observed["now"] - seen["last"] >= sched["every_seconds"]
        if due:
            full = not seen["has_full"] or seen["since_full"] + 1 >= sched["full_every"]
            out.append(Action("backup", f"BackupPlan/{name}",
                              f"schedule every {sched['every_seconds']:g} s is due",
                              {"op": "backup", "plan": name,
                               "kind": "full" if full else "incremental"},
                              {"last": seen["last"], "since_full": seen["since_full"]}))
        kept = select_kept(seen["backups"], spec["retention"])
        forget = [m.id for m in seen["backups"] if m.id not in kept]
        if forget:
            out.append(Action("backup", f"BackupPlan/{name}",
                               f"retention forgets {len(forget)} backups",
                               {"op": "prune", "plan": name}, {"forget": forget}))
    return out


def _restore_actions(observed: dict[str, Any]) -> list[Action]:
    return [Action("restore", f"RestoreRequest/{r['id']}",
                   f"restore of backup {r['backup_id']} into {r['target']!r} requested by "
                   f"{r['actor']}",
                   {"op": "restore", "request": r["id"], "backup": r["backup_id"],
                    "target": r["target"]}, {"requested_at": r["created_at"]})
            for r in observed.get("restores", ())]


def _verify_actions(every: float | None, observed: dict[str, Any]) -> list[Action]:
    """The latest backup of each plan, every ``every`` seconds (first ``every`` after start)."""
    if every is None:
        return []
    out = []
    for name, seen in sorted(observed["plans"].items()):
        if not seen["backups"]:
            continue
        last = observed.get("verified", {}).get(name)
        due = (observed["up_for"] >= every) if last is None else observed["now"] - last >= every
        if due:
            latest = max(seen["backups"], key=lambda m: (m.created_at, m.seq))
            out.append(Action("backup", f"BackupPlan/{name}",
                              f"scheduled verify every {every:g} s is due",
                              {"op": "verify", "plan": name, "backup": latest.id},
                              {"last_verified": last}))
    return out


CONTROLLERS = [ResilienceController]
