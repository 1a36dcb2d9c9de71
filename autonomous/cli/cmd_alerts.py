"""alerts: list the running operator's alerts, acknowledge or resolve one."""

from __future__ import annotations

import json
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("alerts", help="list alerts (active first), or ack / resolve one")
    p.add_argument("action", nargs="?", choices=["list", "ack", "resolve"], default="list")
    p.add_argument("id", nargs="?", help="alert id (see 'alerts list')")
    p.add_argument("--comment", default="", help="why / what is being done (ack, resolve)")
    p.add_argument("--limit", type=int, default=50, help="history rows listed")
    p.add_argument("--json", action="store_true")
    add_client_args(p)
    p.set_defaults(func=cmd_alerts)


def cmd_alerts(args: Any) -> int:
    client = ApiClient(args)
    if args.action == "list":
        data = call_json(client, "GET", "/api/telemetry/alerts", params={"limit": args.limit})
        if data is None:
            return 1
        if args.json:
            print(json.dumps(data, indent=2))
            return 0
        _table(data)
        return 0
    if args.id is None or not args.id.isdigit():
        print(f"alerts {args.action} needs an alert id, a number (see 'atlas-autonomous "
              "alerts list')")
        return 2
    row = call_json(client, "POST", f"/api/telemetry/alerts/{args.action}/{args.id}",
                    json={"comment": args.comment})
    if row is None:
        return 1
    print(f"alert {row['id']} ({row['rule']}): {row['state']}")
    return 0


def _table(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="alerts")
    for col in ("id", "state", "severity", "rule", "labels", "summary"):
        t.add_column(col)
    active = {a["id"] for a in data.get("active", [])}
    rows = data.get("active", []) + [a for a in data.get("history", []) if a["id"] not in active]
    for a in rows:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.get("labels", {}).items()))
        t.add_row(str(a["id"]), a["state"], a["severity"], a["rule"], labels, a["summary"])
    Console().print(t)
    if active:
        print("acknowledge with: atlas-autonomous alerts ack <id> --comment '...'")
