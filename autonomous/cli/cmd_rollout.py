"""``atlas-autonomous rollout``: staged rollouts of a running operator, through its API.

``rollout status [--watch SECONDS]`` (live table: service, versions, phase, since, status;
open update sets; the approvals that hold any of them, with the command that decides each;
refreshed until no rollout or set runs), ``rollout history [--limit N]``,
``rollout rollback SERVICE [--reason R]``, ``rollout set SERVICE=VERSION ... [--watch S]``
(an ordered, all-or-nothing update set, with its progress) and ``rollout clear SERVICE
VERSION`` (allow a quarantined version again). Mutating ones send the API token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json, local_time
from autonomous.governance.approvals import approve_command

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("rollout", help="staged rollouts: status (live), history, rollback, "
                       "clear a quarantined version")
    rs = p.add_subparsers(dest="rollout_command", required=True, metavar="ACTION")
    h = rs.add_parser("status", help="running rollouts, open update sets, quarantined "
                      "versions and the approvals that hold them")
    h.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="refresh every SECONDS until no rollout or set runs (Ctrl-C stops)")
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_status)
    h = rs.add_parser("history", help="rollout events, newest first")
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_history)
    h = rs.add_parser("rollback", help="roll a running rollout back (candidate quarantined)")
    h.add_argument("service")
    h.add_argument("--reason", default=None)
    add_client_args(h)
    h.set_defaults(func=cmd_rollback)
    h = rs.add_parser("set", help="update several services as one ordered, all-or-nothing "
                      "set (dependency order; commits together; any rollback undoes all)")
    h.add_argument("members", nargs="+", metavar="SERVICE=VERSION")
    h.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="show progress every SECONDS until the set ends (Ctrl-C stops)")
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_set)
    h = rs.add_parser("clear", help="allow a quarantined version again")
    h.add_argument("service")
    h.add_argument("version")
    add_client_args(h)
    h.set_defaults(func=cmd_clear)


def _call(args: Any, method: str, path: str, **kw: Any) -> Any:
    return call_json(ApiClient(args), method, path, **kw)


def _table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"rollouts ({len(data['rollouts'])} running)")
    for col in ("id", "service", "from", "to", "phase", "phase since (s)", "status"):
        t.add_column(col)
    now = time.time()
    why = []
    for r in data["rollouts"]:
        phase = (f"{r['phase']} {r['weight']} %" if r.get("phase") is not None
                 else str(r["phase_index"]))  # the name once the controller has reported
        t.add_row(str(r["id"]), r["service"], r["from_version"], r["to_version"], phase,
                  f"{now - r['phase_started_at']:.0f}", r["status"] + (
                      f", judge: {r['verdict']}" if r.get("verdict") else ""))
        if r.get("decision"):
            samples = (f" [{r['baseline_n']}/{r['candidate_n']} samples, {r['rounds']} "
                       "rounds]" if r.get("baseline_n") is not None else "")
            why.append(f"rollout {r['id']} ({r['service']}): {r['decision']}{samples}")
    for v in data.get("vetting", []):  # checks running in the background, before traffic
        over = v["step"] in ("passed", "failed")  # the checks ended: the outcome is next
        t.add_row(v["rollout"], v["service"], v["from_version"], v["to_version"],
                  f"VETTING: {v['step']}", f"{v['step_seconds']:.0f}",
                  f"checks {v['step']}" if over else f"checks (attempt {v['attempt']})")
    for q in data["quarantined"]:
        t.add_row("", q["service"], "", q["version"], "", "", "quarantined")
    waiting = {a["resource"]: a for a in data.get("awaiting_approval", [])}
    for s in data.get("sets", []):  # open update sets: the member under way, or the next
        m = s["members"][min(s["current_index"], len(s["members"]) - 1)]
        gate = waiting.get(f"UpdateSet/{s['id']}")
        t.add_row(f"set {s['id']}", m["service"], m["from_version"], m["to_version"],
                  f"member {m['index'] + 1}/{len(s['members'])}", "",
                  f"{s['state']}" + (", awaiting approval" if gate else ""))
    if not waiting and not why:
        return t
    from rich.console import Group
    from rich.text import Text

    lines = [Text(w) for w in why] + [Text(
        f"awaiting approval {a['id']} ({a['action']} {a['resource']}: {a['reason']}; "
        f"expires {a['expires_at'][:19]}Z): {approve_command(a['id'])}")
        for a in waiting.values()]
    return Group(t, *lines)


def _show(args: Any, data: Any, table: Callable[[Any], Any], going: Callable[[Any], bool],
          refresh: Callable[[Any], Any]) -> tuple[int | None, Any]:
    """``data`` as JSON (--json), as one table, or (--watch N) as a live table that
    ``refresh`` (None: the call failed) renews every N seconds while ``going``. The exit
    status, None once a watch ran to its end; and the last data shown."""
    from rich.console import Console
    from rich.live import Live

    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0, data
    if args.watch is None:
        Console().print(table(data))
        return 0, data
    try:
        with Live(table(data), refresh_per_second=4) as live:
            while going(data):
                time.sleep(args.watch)
                new = refresh(data)
                if new is None:
                    return 1, data
                data = new
                live.update(table(data))
    except KeyboardInterrupt:
        return 130, data
    return None, data


def cmd_status(args: Any) -> int:
    data = _call(args, "GET", "/api/evolution/status")
    if data is None:
        return 1
    code, _ = _show(args, data, _table,
                    lambda d: bool(d["rollouts"] or d.get("vetting") or d.get("sets")),
                    lambda _: _call(args, "GET", "/api/evolution/status"))
    return 0 if code is None else code


def cmd_history(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    rows = _call(args, "GET", "/api/evolution/history", params={"limit": args.limit})
    if rows is None:
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    t = Table(title=f"rollout history ({len(rows)})")
    for col in ("ts", "service", "to", "action", "phase", "reason"):
        t.add_column(col)
    for r in rows:
        t.add_row(local_time(r["ts"]), r["service"], r["to_version"], r["action"],
                  str(r["phase_index"]), r["reason"][:80])
    Console().print(t)
    return 0


def cmd_rollback(args: Any) -> int:
    out = _call(args, "POST", "/api/evolution/rollback",
                json={"service": args.service, "reason": args.reason})
    if out is None:
        return 1
    print(f"{out['service']}: rolled back, {out['quarantined']} quarantined")
    return 0


def cmd_clear(args: Any) -> int:
    out = _call(args, "POST", "/api/evolution/quarantine/clear",
                json={"service": args.service, "version": args.version})
    if out is None:
        return 1
    print(f"{out['service']} {out['version']}: no longer quarantined")
    return 0


def _set_table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"update set {data['id']}: {data['state']} — {data['reason']}")
    for col in ("#", "service", "from", "to", "status"):
        t.add_column(col)
    for m in data["members"]:
        mark = "→ " if data["state"] == "rolling" and m["index"] == data["current_index"] \
            else ""
        t.add_row(str(m["index"]), mark + m["service"], m["from_version"], m["to_version"],
                  m["status"] + (" (failed)" if m["service"] == data["failed_member"] else ""))
    gate = data.get("awaiting_approval")
    if gate is None:
        return t
    from rich.console import Group
    from rich.text import Text

    return Group(t, Text(f"awaiting approval {gate}: {approve_command(gate)}"))


def cmd_set(args: Any) -> int:
    members = []
    for item in args.members:
        svc, sep, version = item.partition("=")
        if not sep or not svc or not version:
            print(f"error: {item!r}: expected SERVICE=VERSION")
            return 2
        members.append({"service": svc, "version": version})
    data = _call(args, "POST", "/api/evolution/update", json={"services": members})
    if data is None:
        return 1

    def refresh(d: Any) -> Any:
        rows = _call(args, "GET", "/api/evolution/sets", params={"limit": 1000})
        status = _call(args, "GET", "/api/evolution/status")
        if rows is None or status is None:
            return None
        row = next((r for r in rows if r["id"] == d["id"]), d)
        gate = next((a["id"] for a in status.get("awaiting_approval", [])
                     if a["resource"] == f"UpdateSet/{d['id']}"), None)
        return {**row, "awaiting_approval": gate}
    code, data = _show(args, data, _set_table,
                       lambda d: d["state"] not in ("done", "rolled_back"), refresh)
    if code is not None:
        return code
    return 0 if data["state"] == "done" else 1
