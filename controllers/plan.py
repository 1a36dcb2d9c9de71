"""``atlas-autonomous plan``: observe and diff every controller against a proposed tree,
act on nothing, and say what governance would do with each action."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from autonomous.context import OperatorContext
from autonomous.core.clock import SystemClock
from autonomous.core.events import EventBus
from autonomous.desired import DesiredStateManager
from autonomous.governance import Approvals, Governance
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.resources.loader import load_tree
from autonomous.status import StatusBoard
from autonomous.store import Store
from controllers.registry import controller_classes

__all__ = ["plan", "plan_actions"]


async def plan_actions(root: Path, data_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """(mode, planned actions) for the tree at ``root`` against the operator data in
    ``data_dir``. The live database is copied first (online backup): nothing is changed."""
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "atlas.db"
        live = data_dir / "atlas.db"
        if live.exists():
            src = Store(live).open()
            src.backup_to(db)
            src.close()
        store = Store(db).open()
        bus = EventBus()
        desired = DesiredStateManager(root, store, bus, clock)
        gov = Governance(store, bus, clock, lambda: desired.current.tree.policies
                         if desired.current else None)
        ctx = OperatorContext(root=root, data_dir=Path(tmp), store=store, bus=bus, clock=clock,
                              desired=desired, governance=gov,
                              approvals=Approvals(store, bus, clock),
                              graph=KnowledgeGraph(store, clock), status=StatusBoard(), token="")
        desired.reload()
        mode = gov.mode
        out: list[dict[str, Any]] = []
        for cls in controller_classes():
            if cls.offline_plan is not None:
                out.append({"controller": cls.name, "skipped": cls.offline_plan})
                continue
            c = cls(ctx)
            try:
                d = c.desired()
                o = await c.observe()
                actions = c.diff(d, o)
            except Exception as exc:  # noqa: BLE001 - report, keep planning the others
                out.append({"controller": c.name, "error": f"{type(exc).__name__}: {exc}",
                            "skipped": "its observe or diff failed outside the operator"})
                continue
            for a in actions:
                out.append({"controller": c.name, **a.as_dict(),
                            "governance": gov.action_mode(a.kind)})
        store.close()
        shutil.rmtree(Path(tmp) / "logs", ignore_errors=True)
        return mode, out


async def plan(root: Path, data_dir: str | None, *, as_json: bool = False) -> int:
    result = load_tree(root)
    if result.tree is None:
        for p in result.problems:
            print(p)
        return 1
    ddir = Path(data_dir) if data_dir else Path.cwd() / result.tree.config.data_dir
    mode, actions = await plan_actions(root.resolve(), ddir.resolve())
    if as_json:
        print(json.dumps({"mode": mode, "actions": actions}, indent=2, default=str))
        return 0
    t = Table(title=f"plan (mode {mode})")
    for col in ("controller", "action", "resource", "reason", "governance"):
        t.add_column(col)
    for a in actions:
        if "skipped" in a:
            why = f"{a['skipped']} ({a['error']})" if "error" in a else a["skipped"]
            t.add_row(a["controller"], "-", "-", f"not planned: {why}", "-")
        else:
            t.add_row(a["controller"], a["kind"], a["resource"], a["reason"], a["governance"])
    Console().print(t if actions else "no changes")
    return 0
