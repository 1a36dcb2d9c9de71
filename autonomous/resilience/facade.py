"""The resilience subsystem as other parts see it (``ctx.subsystems["resilience"]``).

Admission (queue and throttling stats; the middleware itself is ``ctx.subsystems["admission"]``
once ``admission.install`` ran), survival mode (``is_in_survival``, ``get_disabled_features``,
enter / exit), and backups per ``BackupPlan`` (backup, list, verify, restore, drill, prune).
Blocking backup work runs in a worker thread; one backup or prune per repository at a time.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autonomous.core.errors import Conflict, NotFound
from autonomous.intents import Intent, IntentStore
from autonomous.backup.chunks import EngineParams
from autonomous.backup.crypto import plan_key_file
from autonomous.backup.target import confine_target
from autonomous.resilience.disaster_recovery import DisasterRecovery
from autonomous.resilience.drill_reap import reap_drills
from autonomous.resilience.heap import then_trim
from autonomous.resilience.restore_requests import RestoreRequests
from autonomous.resilience.survival_mode import SurvivalMode

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = ["ResilienceFacade"]


log = logging.getLogger("atlas.resilience")


class ResilienceFacade:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.survival = SurvivalMode(
            store=ctx.store, bus=ctx.bus, clock=ctx.clock,
            services=lambda: ctx.subsystems.get("services"),
            specs=lambda: dict(ctx.desired.current.services) if ctx.desired.current else {},
            profile=self._profile)
        self._recoveries: dict[Path, DisasterRecovery] = {}
        # a killed operator's drill service and folder: reaped when the next one starts
        self.reaped_drills = reap_drills()
        if self.reaped_drills:
            log.warning("reaped %d drill folder(s) of a killed operator: %s",
                        len(self.reaped_drills), ", ".join(self.reaped_drills))
        self._busy: set[str] = set()
        self.restores = RestoreRequests(ctx.store, ctx.clock)

    def _policy(self) -> dict[str, Any]:
        return self.ctx.policy()["resilience"]

    # -- admission -------------------------------------------------------------------------
    def admission(self) -> Any:
        return self.ctx.subsystems.get("admission")

    def queue_stats(self) -> dict[str, Any]:
        adm = self.admission()
        if adm is None:
            return {"installed": False, "reason": "admission middleware not installed in this "
                    "app (autonomous.resilience.admission.install)"}
        s = adm.stats()
        return {"installed": True, "counts": s["counts"], **s["queue"]}

    def throttling_stats(self) -> dict[str, Any]:
        adm = self.admission()
        if adm is None:
            return {"installed": False, "reason": "admission middleware not installed"}
        return {"installed": True, **adm.throttler.get_stats(), "loop_lag": adm.lag.stats()}

    # -- survival --------------------------------------------------------------------------
    def _profile(self) -> dict[str, Any]:
        name = self._policy()["survival"]["profile"]
        cur = self.ctx.desired.current
        found = [r for r in cur.tree.of_kind("SurvivalProfile") if r.name == name] if cur else []
        if not found:
            raise NotFound(f"SurvivalProfile {name!r} (policy resilience.survival.profile) is "
                           "not declared in desired_state/")
        return found[0].spec_dict()

    def is_in_survival(self) -> bool:
        return self.survival.is_in_survival()

    def get_disabled_features(self) -> list[str]:
        return self.survival.get_disabled_features()

    async def enter_survival_mode(self, reason: str, *, actor: str = "operator",
                                  source: str = "api") -> dict[str, Any]:
        state = await self.survival.enter_survival_mode(reason, actor=actor, source=source)
        self._apply_admission(True)
        self.ctx.trigger("services")
        return state

    async def exit_survival_mode(self, reason: str, *, actor: str = "operator",
                                 source: str = "api") -> dict[str, Any]:
        state = await self.survival.exit_survival_mode(reason, actor=actor, source=source)
        self._apply_admission(False)
        self.ctx.trigger("services")
        return state

    async def request_survival(self, op: str, reason: str, actor: str) -> Intent | None:
        """Ask the resilience controller to enter (``op`` "enter") or leave survival mode: a
        ``survival_requested`` intent it carries out behind the governance gate (action kind
        ``survival``); the intent once settled or noted (awaiting approval), or as it is after
        ``intents.request_wait_seconds``."""
        intents = IntentStore(self.ctx.store, self.ctx.clock, self.ctx.bus)
        it = intents.request("survival_requested", "SurvivalProfile/survival", reason=reason,
                             requester=f"api:{actor}", params={"op": op, "actor": actor})
        self.ctx.trigger("resilience")
        return await intents.wait(it.id, self.ctx.policy()["intents"]["request_wait_seconds"])

    def _apply_admission(self, active: bool) -> None:
        adm = self.admission()
        if adm is None:
            return
        a = self._policy()["admission"]
        adm.reorder_on_emergency(
            critical_prefixes=tuple(a["survival_promote"]) if active else (),
            disabled_prefixes=tuple(a["survival_shed"]) if active else ())

    # -- backups ---------------------------------------------------------------------------
    def plans(self) -> dict[str, dict[str, Any]]:
        cur = self.ctx.desired.current
        return {r.name: r.spec_dict() for r in cur.tree.of_kind("BackupPlan")} if cur else {}

    def plan(self, name: str) -> dict[str, Any]:
        plans = self.plans()
        if name not in plans:
            raise NotFound(f"BackupPlan {name!r} is not declared; declared: "
                           f"{', '.join(sorted(plans)) or '(none)'}")
        return plans[name]

    def recovery(self, plan: str) -> DisasterRecovery:
        """The DisasterRecovery of the plan's repository (created on first use)."""
        spec = self.plan(plan)
        repo = Path(spec["repository"].replace("{data_dir}", str(self.ctx.data_dir)))
        repo = repo if repo.is_absolute() else self.ctx.root / repo
        if repo not in self._recoveries:
            pol = self._policy()["backup"]
            self._recoveries[repo] = DisasterRecovery(
                repo, EngineParams.from_policy(pol), root=self.ctx.root,
                data_dir=self.ctx.data_dir, store=self.ctx.store, clock=self.ctx.clock,
                drill_port_start=pol["drill_port_start"],
                key_file=plan_key_file(plan, spec, repo, self.ctx.data_dir))
        return self._recoveries[repo]

    def _find(self, backup_id: str) -> tuple[str, DisasterRecovery]:
        for plan in self.plans():
            dr = self.recovery(plan)
            if (dr.repo / "snapshots" / f"{backup_id}.json").exists():
                return plan, dr
        raise NotFound(f"backup {backup_id!r} is in no BackupPlan repository; list them with "
                       "'atlas-autonomous backups --plan PLAN'")

    async def backup(self, plan: str, kind: str = "full") -> dict[str, Any]:
        """Take a full or incremental backup of ``plan`` now (409 while one is running)."""
        dr = self.recovery(plan)
        if plan in self._busy:
            raise Conflict(f"a backup of plan {plan!r} is already running")
        self._busy.add(plan)
        try:
            fn = dr.create_full_backup if kind == "full" else dr.create_incremental_backup
            out = await asyncio.to_thread(then_trim, fn, plan, self.plan(plan))
        finally:
            self._busy.discard(plan)
        self.ctx.bus.publish("backup.created", plan=plan, id=out["id"], kind=out["kind"])
        return out

    def list_backups(self, plan: str | None = None) -> list[dict[str, Any]]:
        plans = [plan] if plan else list(self.plans())
        out = [b for p in plans for b in self.recovery(p).list_backups(p)]
        return sorted(out, key=lambda b: (b["created_at"], b["seq"]), reverse=True)

    async def verify(self, backup_id: str, repair: bool = False) -> dict[str, Any]:
        """Re-hash the backup's chunks; with ``repair``, rewrite damaged ones from live data."""
        _, dr = self._find(backup_id)
        fn = dr.repair if repair else dr.verify_backup_integrity
        return await asyncio.to_thread(then_trim, fn, backup_id)

    async def scheduled_verify(self, plan: str, backup_id: str) -> dict[str, Any]:
        """Verify ``backup_id``; fire alert ``backup_damaged`` (labels plan, backup) through
        the telemetry alert manager when damaged, resolve the plan's open one when clean."""
        rep = await self.verify(backup_id)
        tel = self.ctx.subsystems.get("telemetry")
        if tel is None:
            return {**rep, "alert": "telemetry subsystem not running: no alert raised"}
        open_ = [a for a in tel.alerts.db.open_alerts(source="manual").values()
                 if a["labels"].get("alertname") == "backup_damaged"
                 and a["labels"].get("plan") == plan]
        if not rep["ok"]:
            a = tel.alerts.trigger_alert(
                "backup_damaged", {"plan": plan, "backup": backup_id}, severity="critical",
                summary=f"backup {backup_id} of plan {plan!r} is damaged: "
                f"{len(rep['damaged_chunks'])} chunk(s), files "
                f"{', '.join(rep.get('damaged_files', [])[:5])}; repair with "
                f"atlas-autonomous backup verify --repair {backup_id}", actor="resilience")
            return {**rep, "alert": a["id"]}
        for a in open_:
            tel.alerts.resolve_alert(a["id"], "resilience",
                                     f"scheduled verify of {backup_id} found no damage")
        return {**rep, "resolved": [a["id"] for a in open_]}

    def _target(self, target: str) -> Path:
        roots = [Path(r) for r in self._policy()["backup"]["restore_roots"]]
        return confine_target(target, self.ctx.data_dir, roots)

    def request_restore(self, backup_id: str, target: str, actor: str) -> dict[str, Any]:
        """Record a restore request (refused at once when the target or backup is wrong);
        the resilience controller carries it out through the governance gate. Asked again
        while the same restore (backup, resolved target) is still open, it answers that one:
        a retried call does not queue a second approval for the same thing."""
        path = self._target(target)
        self._find(backup_id)
        for open_row in self.restores.open():
            if open_row["backup_id"] == backup_id and self._same_target(open_row, path):
                return open_row
        row = self.restores.add(backup_id, target, actor,
                                self._policy()["backup"]["restore_history_keep"])
        self.ctx.trigger("resilience")
        return row

    def _same_target(self, row: dict[str, Any], path: Path) -> bool:
        try:
            return self._target(row["target"]) == path
        except ValueError:  # refused now (the policy moved since): not the same restore
            return False

    async def wait_restore(self, request_id: str) -> dict[str, Any]:
        return await self.restores.wait(request_id,
                                        self._policy()["backup"]["restore_wait_seconds"])

    async def restore(self, backup_id: str, target: str) -> dict[str, Any]:
        """Restore into ``target`` now (the controller's action; relative paths land under
        ``<data_dir>/restores/``, absolute ones under it or a policy ``restore_roots``)."""
        path = self._target(target)
        _, dr = self._find(backup_id)
        return await asyncio.to_thread(then_trim, dr.restore_from_disaster, backup_id, path)

    async def drill(self, backup_id: str) -> dict[str, Any]:
        plan, dr = self._find(backup_id)
        report = await asyncio.to_thread(then_trim, dr.test_disaster_recovery, backup_id,
                                         self.plan(plan).get("drill"))
        self.ctx.bus.publish("backup.drill", id=backup_id, ok=report["ok"])
        return report

    async def prune(self, plan: str) -> dict[str, Any]:
        dr = self.recovery(plan)
        return await asyncio.to_thread(dr.prune, plan, self.plan(plan)["retention"])

    def runs(self, plan: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recorded backup runs (failed ones too), newest first."""
        sql, args = "SELECT * FROM backup_runs", []
        if plan:
            sql, args = sql + " WHERE plan=?", [plan]
        rows = self.ctx.store.query(sql + " ORDER BY started_at DESC LIMIT ?", (*args, limit))
        return [dict(r) for r in rows]
