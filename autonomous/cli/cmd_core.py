"""validate, status, mode, approvals."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json
from autonomous.governance.approvals import approve_command
from autonomous.resources.loader import TREE_DIRS, load_paths, load_tree

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="validate YAML resources (default: the whole tree)")
    p.add_argument("paths", nargs="*", help="files or folders (default: desired_state, "
                   "policies, config under --root)")
    p.add_argument("--root", default=".")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("status", help="controllers and resources of a running operator")
    add_client_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("mode", help="show or switch the governance mode")
    p.add_argument("name", nargs="?", choices=["governed", "growth", "emergency_stop"])
    p.add_argument("--reason", default=None)
    add_client_args(p)
    p.set_defaults(func=cmd_mode)

    p = sub.add_parser("approvals", help="list, approve or reject approval requests")
    p.add_argument("action", nargs="?", choices=["list", "approve", "reject"], default="list")
    p.add_argument("id", nargs="?")
    add_client_args(p)
    p.set_defaults(func=cmd_approvals)


def cmd_validate(args: Any) -> int:
    root = Path(args.root)
    if args.paths:
        result = load_paths(args.paths)
    else:
        result = load_tree(root)
        if not any((root / d).exists() for d in TREE_DIRS):
            print(f"{root}: no desired_state/, policies/ or config/ here; pass --root or paths",
                  file=sys.stderr)
            return 1
    for p in result.problems:
        print(p)
    if result.problems:
        print(f"{len(result.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ok: no problems (tree hash {result.hash[:12]})")
    return 0


def _call(args: Any, method: str, path: str, **kw: Any) -> dict[str, Any] | None:
    return call_json(ApiClient(args), method, path, **kw)


def cmd_status(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    data = _call(args, "GET", "/api/reconcile/status")
    if data is None:
        return 1  # said once why, and how to start it
    desired = _call(args, "GET", "/api/desired-state")
    if desired is None:
        return 1
    if args.json:
        print(json.dumps({"reconcile": data, "desired_state": desired}, indent=2))
        return 0
    con = Console()
    con.print(f"generation [bold]{desired['generation']}[/] ({(desired['hash'] or '')[:12]}, "
              f"commit {desired['commit'] or '-'}), mode [bold]{data['mode']}[/]")
    if desired["error"]:
        con.print(f"[red]last edit rejected:[/]\n{desired['error']['text']}")
    t = Table(title="controllers")
    for col in ("controller", "runs", "errors", "last run", "ms", "last error"):
        t.add_column(col)
    now = datetime.now(timezone.utc)
    for name, c in data["controllers"].items():
        ms = c["last_duration_ms"]
        t.add_row(name, str(c["runs"]), str(c["errors"]), _ago(c["last_run_at"], now),
                  "-" if ms is None else f"{ms:.1f}", c["last_error"] or "")
    con.print(t)
    r = Table(title="resources")
    for col in ("controller", "resource", "sync", "health", "conditions"):
        r.add_column(col)
    for name, c in data["controllers"].items():
        for res in c["resources"]:
            conds = ", ".join(f"{x['type']}={x['status']}({x['reason']})"
                              for x in res["conditions"])
            r.add_row(name, f"{res['kind']}/{res['name']}", res["sync"], res["health"], conds)
    con.print(r)
    for line in _removals(data):
        con.print(line)
    return 0


def _removals(data: dict[str, Any]) -> list[str]:
    """Services stopped because their file was removed, with what the gate did."""
    out = []
    for c in data["controllers"].values():
        for a in c.get("last_actions", []):
            if a["kind"] in ("stop", "stop_by_removal") and \
                    a["reason"].startswith("removed from the desired state"):
                o = a["outcome"]
                hint = (f"; approve with: {approve_command(o['details']['approval'])}"
                        if o["details"].get("pending") else "")
                out.append(f"{a['resource']}: {a['reason']} ({o['message']}{hint})")
    return out


def cmd_mode(args: Any) -> int:
    if args.name is None:
        data = _call(args, "GET", "/api/governance/mode")
    else:
        data = _call(args, "PUT", "/api/governance/mode",
                     json={"mode": args.name, "reason": args.reason or "cli"})
    if data is None:
        return 1
    if args.name is not None and data.get("previous") == data["mode"]:
        print(f"{data['mode']} (already in {data['mode']}: no switch recorded)")
        return 0
    print(data["mode"])
    return 0


def cmd_approvals(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    if args.action == "list":
        data = _call(args, "GET", "/api/approvals")
        if data is None:
            return 1
        t = Table(title="approvals")
        for col in ("id", "state", "action", "resource", "generation", "expires"):
            t.add_column(col)
        for a in data["approvals"]:
            t.add_row(a["id"], a["state"], a["action_kind"], a["resource"], str(a["generation"]),
                      a["expires_at"] or "")
        Console().print(t)
        return 0
    if not args.id:
        print("approve/reject need an approval id (see 'approvals list')", file=sys.stderr)
        return 2
    data = _call(args, "POST", f"/api/approvals/{args.id}/{args.action}", json={})
    if data is None:
        return 1
    print(f"{data['id']}: {data['state']}")
    return 0


def _ago(iso: str | None, now: datetime) -> str:
    """``2026-12-07T23:43:10Z`` as "4 s ago" (a narrow column that still says when)."""
    if not iso:
        return "-"
    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    secs = max(0.0, (now - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return f"{int(secs)} s ago"
