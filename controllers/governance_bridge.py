"""The governance bridge controller: the ATLAS governance state drives the operator's mode.

observe: the mode in force and what the configured source asks for (or why it cannot be read).
diff (pure): one ``mode`` action when the source names a mode other than the one in force;
nothing when they agree, when the bridge is off (``source: null``) or the source is unreadable
(the mode is left as it is and the ``SourceReadable`` condition says why). While a source is
configured it owns the mode: a switch made elsewhere is brought back to what the source says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonomous.governance.bridge import BridgeState, SourceError, read_source
from autonomous.resources.config.governance_bridge import GovernanceBridgeSettings
from controllers.base import Action, Controller, Outcome

__all__ = ["CONTROLLERS", "GovernanceBridgeController"]

RESOURCE = "Governance/mode"


@dataclass(frozen=True)
class Observed:
    mode: str
    wanted: BridgeState | None
    error: str | None


class GovernanceBridgeController(Controller):
    name = "governance_bridge"
    subsystem = "governance_bridge"
    order = 5  # before the controllers whose gates depend on the mode

    def desired(self) -> GovernanceBridgeSettings | None:
        gen = self.ctx.desired.current
        if gen is None:
            return None
        raw = gen.tree.config.settings.get("governance_bridge")
        if raw is None or isinstance(raw, GovernanceBridgeSettings):
            return raw
        return GovernanceBridgeSettings.model_validate(raw)

    async def observe(self) -> Observed:
        settings = self.desired()
        mode = self.ctx.governance.mode
        if settings is None or settings.source is None:
            return Observed(mode, None, None)
        try:
            return Observed(mode, await read_source(settings.source, self.ctx.root), None)
        except SourceError as exc:
            return Observed(mode, None, str(exc))

    @staticmethod
    def diff(desired: GovernanceBridgeSettings | None, observed: Observed) -> tuple[Action, ...]:
        if desired is None or desired.source is None or observed.wanted is None:
            return ()
        if observed.wanted.mode == observed.mode:
            return ()
        w = observed.wanted
        return (Action("mode", RESOURCE, f"ATLAS governance state is {w.mode}: {w.reason}",
                       {"mode": w.mode, "reason": w.reason},
                       {"mode_in_force": observed.mode, "source": w.source}),)

    @staticmethod
    def requeue_after(desired: GovernanceBridgeSettings | None, _observed: Any) -> float | None:
        return desired.interval_seconds if desired is not None and desired.source else None

    async def act(self, action: Action) -> Outcome:
        res = self.ctx.governance.set_mode(action.params["mode"], actor="governance-bridge",
                                           reason=action.params["reason"])
        return Outcome(action, True, f"mode {res['previous']} → {res['mode']}", details=res)

    def report(self, desired: GovernanceBridgeSettings | None, observed: Observed,
               outcomes: list[Outcome]) -> None:
        if desired is None or desired.source is None:
            self.ctx.status.drop_resource(self.name, RESOURCE)
            return
        st = self.ctx.status.resource(self.name, "Governance", "mode")
        now = self.ctx.clock.now()
        st.set_condition("SourceReadable", observed.error is None,
                         "Read" if observed.error is None else "ReadFailed",
                         observed.error or (observed.wanted.source if observed.wanted else ""),
                         now)
        st.details = {"mode": self.ctx.governance.mode,
                      "source_mode": observed.wanted.mode if observed.wanted else None}


CONTROLLERS = [GovernanceBridgeController]
