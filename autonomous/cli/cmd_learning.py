"""``atlas-autonomous proposals`` and ``atlas-autonomous learning``: the learning engine of a
running operator, through its API.

``proposals [list] [--state S]``, ``proposals show ID`` (diff, evidence, evaluation, history),
``proposals approve|reject|revert ID [--reason R]``; ``learning cycle`` (run one now),
``learning insights``, ``learning export FILE``. Mutating ones send the API token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json

__all__ = ["register"]

STATES = ("proposed", "evaluated", "awaiting_approval", "approved", "rejected", "baking",
          "kept", "reverted")


def register(sub: Any) -> None:
    p = sub.add_parser("proposals", help="learned proposals: list, show (diff and evidence), "
                       "approve, reject, revert")
    ps = p.add_subparsers(dest="proposals_command", metavar="ACTION")
    p.set_defaults(func=cmd_list, state=None, limit=50, json=False, root=".", url=None,
                   data_dir=None)
    h = ps.add_parser("list", help="proposals, newest first")
    h.add_argument("--state", choices=STATES, default=None)
    h.add_argument("--limit", type=int, default=50)
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_list)
    h = ps.add_parser("show", help="one proposal: diff, evidence, evaluation, history")
    h.add_argument("id")
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_show)
    for verb, text in (("approve", "approve one awaiting approval (applied on the next pass)"),
                       ("reject", "reject an unapplied one (not proposed again for a while)"),
                       ("revert", "revert an applied one (inverse patch, committed)")):
        h = ps.add_parser(verb, help=text)
        h.add_argument("id")
        h.add_argument("--reason", default=None)
        add_client_args(h)
        h.set_defaults(func=cmd_decide, verb=verb)

    p = sub.add_parser("learning", help="learning engine: run a cycle, insights, export")
    ls = p.add_subparsers(dest="learning_command", required=True, metavar="ACTION")
    h = ls.add_parser("cycle", help="run one learning cycle now")
    add_client_args(h)
    h.set_defaults(func=cmd_cycle)
    h = ls.add_parser("insights", help="feedback findings, action items, proposals per state")
    h.add_argument("--json", action="store_true", help="the API's answer as JSON")
    add_client_args(h)
    h.set_defaults(func=cmd_insights)
    h = ls.add_parser("export", help="write the learned knowledge as JSON")
    h.add_argument("file")
    add_client_args(h)
    h.set_defaults(func=cmd_export)


def _call(args: Any, method: str, path: str, **kw: Any) -> Any:
    return call_json(ApiClient(args), method, path, **kw)


def cmd_list(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = args.state
    rows = _call(args, "GET", "/api/learning/proposals", params=params)
    if rows is None:
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    t = Table(title=f"proposals ({len(rows)})")
    for col in ("id", "state", "change", "source", "created"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"], r["state"], f"{r['key']}: {r['old']} → {r['new']}", r["source"],
                  r["created_at"] or "")
    Console().print(t)
    return 0


def cmd_show(args: Any) -> int:
    p = _call(args, "GET", f"/api/learning/proposals/{args.id}")
    if p is None:
        return 1
    if args.json:
        print(json.dumps(p, indent=2, sort_keys=True))
        return 0
    print(f"{p['id']}  {p['state']}  {p['title']}")
    print(f"computed against generation {p['generation']} at cycle {p['cycle']}; "
          f"bounds [{p['low']}, {p['high']}]")
    print(p["diff"], end="")
    print("evidence:   " + json.dumps(p["evidence"], sort_keys=True))
    print("evaluation: " + json.dumps(p["evaluation"], sort_keys=True))
    for e in p["events"]:
        print(f"  {e['ts']}  {e['from'] or '-'} → {e['to']}  ({e['actor']}) {e['reason']}")
    return 0


def cmd_decide(args: Any) -> int:
    p = _call(args, "POST", f"/api/learning/proposals/{args.id}/{args.verb}",
              json={"reason": args.reason})
    if p is None:
        return 1
    print(f"{p['id']}: {p['state']} ({p['reason']})")
    return 0


def cmd_cycle(args: Any) -> int:
    out = _call(args, "POST", "/api/learning/cycle")
    if out is None:
        return 1
    what = "frozen: " + str(out["reason"]) if out["frozen"] else \
        f"{len(out['proposed'])} proposed {' '.join(out['proposed'])}".strip()
    print(f"cycle {out['cycle']} ({out['mode']}): {what}")
    return 0


def cmd_insights(args: Any) -> int:
    out = _call(args, "GET", "/api/learning/insights")
    if out is None:
        return 1
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    counts = ", ".join(f"{n} {st}" for st, n in sorted(out["proposals"].items())) or "none yet"
    con.print(f"cycle [bold]{out['cycle']}[/], mode [bold]{out['mode']}[/]; proposals: {counts}")
    t = Table(title=f"feedback findings ({len(out['findings'])})")
    for col in ("area", "bad / total", "rate [interval]", "baseline", "verdict"):
        t.add_column(col)
    for f in out["findings"]:
        t.add_row(f["area"], f"{f['bad']} / {f['total']}",
                  f"{f['rate']:.2f} [{f['low']:.2f}, {f['high']:.2f}]", f"{f['baseline']:.2f}",
                  f["verdict"])
    con.print(t)
    for title, rows in (("action items", [i["action"] for i in out["action_items"]]),
                        ("usage patterns", [p["text"] for p in out["patterns"]])):
        con.print(f"[bold]{title}[/] ({len(rows)})" + ("" if rows else ": none"))
        for line in rows:
            con.print(f"  - {line}")
    return 0


def cmd_export(args: Any) -> int:
    out = _call(args, "GET", "/api/learning/export")
    if out is None:
        return 1
    Path(args.file).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"{args.file}: {sum(len(v) for v in out['tables'].values())} rows")
    return 0
