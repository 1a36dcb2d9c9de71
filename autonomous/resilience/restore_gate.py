"""The governance gate for a restore run without the operator (``atlas-autonomous restore``).

The operator carries a restore out behind the Executor's gate (``governance.actions.restore``).
When no operator answers, the CLI applies the same policy: the mode in force is the one the
store persisted (``governed`` when there is no store yet), the verdict that mode's effective
policy gives the ``restore`` action kind. ``enforce`` restores; ``dry_run`` says what would
be written and writes nothing; ``require_approval`` refuses — an approval can only be granted
to a request the running operator recorded, so the answer names the commands that do it.
A tree that does not load has no policy to ask: the restore is refused too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonomous.core.clock import SystemClock
from autonomous.core.events import EventBus
from autonomous.governance.mode import Governance
from autonomous.backup.target import confine_target

__all__ = ["OfflineRestoreGate", "RestoreVerdict"]


@dataclass(frozen=True)
class RestoreVerdict:
    """What the gate allows: ``gate`` is ``enforce``, ``dry_run`` or ``require_approval``
    (``refused`` when there is no policy); ``message`` says why and what to do."""

    gate: str
    mode: str | None
    target: Path | None
    message: str

    @property
    def allowed(self) -> bool:
        return self.gate == "enforce"


class OfflineRestoreGate:
    def __init__(self, root: Path, data_dir: Path, policies: dict[str, dict[str, Any]] | None,
                 store: Any) -> None:
        """``policies``: the tree's effective policies per mode (None: the tree is invalid);
        ``store``: the operator's store when its database exists (holds the mode)."""
        self.root = root
        self.data_dir = data_dir
        self.policies = policies
        self.store = store

    def check(self, backup_id: str, target: str) -> RestoreVerdict:
        """The verdict for restoring ``backup_id`` into ``target`` (confined like the API's:
        ``RestoreTargetRefused`` when the target is not allowed)."""
        if self.policies is None:
            return RestoreVerdict(
                "refused", None, None,
                f"restore refused: the tree at {self.root} does not load, so no policy says "
                "whether a restore is allowed (governance.actions.restore); pass --root of a "
                "valid tree (a fresh checkout's default tree will do) or restore through the "
                "running operator")
        mode = self._mode()
        pol = self.policies[mode]
        roots = [Path(r) for r in pol["resilience"]["backup"]["restore_roots"]]
        path = confine_target(target, self.data_dir, roots)
        gate = pol["governance"]["actions"].get("restore", "require_approval")
        root = f" --root {self.root}" if self.root != Path.cwd() else ""
        if gate == "enforce":
            return RestoreVerdict(gate, mode, path, f"restore allowed in {mode} mode")
        if gate == "dry_run":
            return RestoreVerdict(gate, mode, path,
                                  f"dry run ({mode} mode, policy governance.actions.restore is "
                                  f"dry_run): would restore backup {backup_id} into {path}; "
                                  "nothing was written")
        return RestoreVerdict(
            gate, mode, path,
            f"restore refused: in {mode} mode policy governance.actions.restore is "
            f"require_approval, and no operator answered to record the request. Start it "
            f"('atlas-autonomous run{root}'), run this restore again — it prints the approval "
            "id — then approve with 'atlas-autonomous approvals approve <id>'")

    def _mode(self) -> str:
        if self.store is None:
            from autonomous.governance.mode import DEFAULT_MODE

            return DEFAULT_MODE
        gov = Governance(self.store, EventBus(), SystemClock(), lambda: self.policies)
        return gov.mode
