"""``atlas-autonomous heal``: the self-healing engine of a running operator.

``heal history [--service S] [--state X] [--limit N]``, ``heal stats``,
``heal trigger SERVICE [--strategy X] [--reason R]``, ``heal pause SERVICE``,
``heal resume SERVICE`` — all through the operator's API (``/api/healing/*``); the mutating
ones send the API token (from ``<data dir>/api-token`` or ``ATLAS_AUTONOMOUS_TOKEN``).
"""

from __future__ import annotations

import json
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json
from autonomous.self_healing.model import RecoveryStrategy

__all__ = ["register"]

_STATES = ("open", "healed", "failed", "escalated", "skipped", "dry_run", "awaiting_approval",
           "backoff", "closed")


def register(sub: Any) -> None:
    p = sub.add_parser("heal", help="self-healing: history, stats, trigger, pause, resume")
    hs = p.add_subparsers(dest="heal_command", required=True, metavar="ACTION")

    h = hs.add_parser("history", help="healing incidents, newest first")
    h.add_argument("--service")
    h.add_argument("--state", choices=_STATES)
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_history)

    h = hs.add_parser("stats", help="attempts, successes and MTTR per error type; breakers")
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_stats)

    h = hs.add_parser("trigger", help="run the healing pipeline for a service now")
    h.add_argument("service")
    h.add_argument("--strategy", choices=[s.value for s in RecoveryStrategy],
                   help="force this strategy first")
    h.add_argument("--reason", default=None)
    h.add_argument("--json", action="store_true")
    add_client_args(h)
    h.set_defaults(func=cmd_trigger)

    pause_help = "pause auto-healing of a service (manual triggers still work)"
    for action, what in (("pause", pause_help), ("resume", "resume auto-healing of a service")):
        h = hs.add_parser(action, help=what)
        h.add_argument("service")
        h.add_argument("--reason", default=None)
        add_client_args(h)
        h.set_defaults(func=cmd_override, action=action)


def _call(args: Any, method: str, path: str, **kw: Any) -> Any:
    """The JSON answer, or None after printing why it failed (unreachable, 4xx)."""
    return call_json(ApiClient(args), method, path, **kw)


def _dump(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def cmd_history(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    params = {k: v for k, v in (("service", args.service), ("state", args.state),
                                ("limit", args.limit)) if v is not None}
    rows = _call(args, "GET", "/api/healing/history", params=params)
    if rows is None:
        return 1
    if args.json:
        _dump(rows)
        return 0
    t = Table(title=f"healing history ({len(rows)})")
    for col in ("detected", "service", "state", "type", "rule", "strategy", "mttr s", "message"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.get("detected_at") or ""), r["service"], r["state"],
                  str(r.get("error_type") or ""), str(r.get("rule") or ""),
                  str(r.get("strategy") or ""), "" if r.get("mttr_s") is None
                  else f"{r['mttr_s']:g}", r["message"][:80])
    Console().print(t)
    return 0


def cmd_stats(args: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    data = _call(args, "GET", "/api/healing/stats")
    if data is None:
        return 1
    if args.json:
        _dump(data)
        return 0
    con = Console()
    t = Table(title="healing per error type")
    for col in ("type", "incidents", "attempts", "healed", "escalated", "MTTR median s",
                "MTTR max s"):
        t.add_column(col)
    for name, s in sorted((data.get("by_type") or {}).items()):
        mttr = s.get("mttr_s") or {}
        t.add_row(name, *(_fmt(s.get(k)) for k in ("incidents", "attempts", "healed",
                                                   "escalated")),
                  _fmt(mttr.get("median")), _fmt(mttr.get("max")))
    con.print(t)
    b = Table(title="breakers")
    for col in ("name", "state", "failures", "opened"):
        b.add_column(col)
    for br in data.get("breakers", []):
        b.add_row(br["name"], br["state"], _fmt(br.get("failures")),
                  _fmt(br.get("opened_count")))
    con.print(b)
    return 0


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def cmd_trigger(args: Any) -> int:
    body = {"service": args.service, "strategy": args.strategy, "reason": args.reason}
    row = _call(args, "POST", "/api/healing/trigger",
                json={k: v for k, v in body.items() if v is not None})
    if row is None:
        return 1
    if args.json:
        _dump(row)
    else:
        tried = ", ".join(f"{a['strategy']}={'ok' if a['ok'] else 'failed'}"
                          for a in row.get("attempts") or [])
        print(f"{row['service']}: {row['state']} — {row['message']}"
              + (f" (tried: {tried})" if tried else ""))
    # open: its step started (verified by the healing controller; heal history follows it)
    return 0 if row["state"] in ("open", "healed", "awaiting_approval", "dry_run",
                                 "nothing_to_heal") else 2


def cmd_override(args: Any) -> int:
    body = {"service": args.service, "action": args.action}
    if args.reason:
        body["reason"] = args.reason
    st = _call(args, "POST", "/api/healing/override", json=body)
    if st is None:
        return 1
    print(f"{args.service}: auto-healing {'paused' if st.get('paused_by_human') else 'active'}")
    return 0
