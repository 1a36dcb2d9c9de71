"""alerts: list the running operator's alerts, acknowledge or resolve one; silences: list,
add (label matchers for a while, with a comment, as amtool asks) or expire one."""

from __future__ import annotations

import json
import time
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args, call_json, local_time
from autonomous.core.errors import ValidationFailed
from autonomous.store.timeseries import parse_duration

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

    s = sub.add_parser("silences", help="list silences, add one (label matchers for a "
                       "while) or expire one")
    s.add_argument("action", nargs="?", choices=["list", "add", "expire"], default="list")
    s.add_argument("args", nargs="*", metavar="MATCHER|ID",
                   help="add: label matchers key=value (e.g. service=nexus alertname=cpu_high); "
                        "expire: the silence id")
    s.add_argument("--duration", default="1h", help="add: how long, e.g. 90m, 2h, 1d "
                   "(default 1h, at most 90d)")
    s.add_argument("--comment", default="", help="add: why (required, shown with the silence)")
    s.add_argument("--all", action="store_true", help="list: ended ones too")
    s.add_argument("--json", action="store_true")
    add_client_args(s)
    s.set_defaults(func=cmd_silences)


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
        t.add_row(str(a["id"]), a["state"], a["severity"], a["rule"],
                  _matchers(a.get("labels", {})), a["summary"])
    Console().print(t)
    if active:
        print("acknowledge with: atlas-autonomous alerts ack <id> --comment '...'")


def cmd_silences(args: Any) -> int:
    if args.action == "add":
        body = _silence_body(args)
        if isinstance(body, str):
            print(body)
            return 2
        row = call_json(ApiClient(args), "POST", "/api/telemetry/silences", json=body)
        if row is None:
            return 1
        print(f"silence {row['id']} until {local_time(row['ends_at'])}: "
              f"{_matchers(row['matchers'])}")
        return 0
    if args.action == "expire":
        if len(args.args) != 1 or not args.args[0].isdigit():
            print("silences expire needs one silence id, a number (see 'atlas-autonomous "
                  "silences list')")
            return 2
        row = call_json(ApiClient(args), "DELETE", f"/api/telemetry/silences/{args.args[0]}")
        if row is None:
            return 1
        print(f"silence {row['id']} ended at {local_time(row['ends_at'])}")
        return 0
    if args.args:
        print("silences list takes no arguments (did you mean 'silences add'?)")
        return 2
    rows = call_json(ApiClient(args), "GET", "/api/telemetry/silences",
                     params={"active": not args.all})
    if rows is None:
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="silences" if args.all else "silences in force")
    for col in ("id", "matchers", "until", "by", "comment"):
        t.add_column(col)
    now = time.time()
    for r in rows:
        until = local_time(r["ends_at"]) + (" (ended)" if r["ends_at"] <= now else "")
        t.add_row(str(r["id"]), _matchers(r["matchers"]), until, r["created_by"], r["comment"])
    Console().print(t)
    return 0


def _silence_body(args: Any) -> dict[str, Any] | str:
    """The POST body of ``silences add``, or what to fix."""
    if not args.args:
        return ("silences add needs at least one label matcher key=value, e.g. "
                "'atlas-autonomous silences add service=nexus --comment \"deploying\"'")
    matchers: dict[str, str] = {}
    for m in args.args:
        key, eq, value = m.partition("=")
        if not eq or not key.strip():
            return f"silences add: {m!r} is not a label matcher key=value"
        matchers[key.strip()] = value
    if not args.comment.strip():
        return "silences add needs --comment: why the alerts are muted (shown with the silence)"
    try:
        seconds = parse_duration(args.duration)
    except ValidationFailed as exc:
        return f"silences add: --duration: {exc.problems[0].message}"
    return {"matchers": matchers, "duration_seconds": seconds, "comment": args.comment}


def _matchers(m: dict[str, str]) -> str:
    """Labels (an alert's, a silence's matchers) as ``k=v, k=v``, sorted by key."""
    return ", ".join(f"{k}={v}" for k, v in sorted(m.items()))
