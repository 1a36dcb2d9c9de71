"""fleet: write the central Prometheus + Alertmanager set-up (and Grafana dashboards) that
watch several hosts' operators."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fleet", help="write prometheus.yml, recording rules, alertmanager.yml and Grafana "
        "dashboards for a fleet of hosts")
    p.add_argument("--host", action="append", default=[], metavar="NAME=ADDRESS:PORT[,URL]",
                   help="one per host: its name (the 'host' label), its operator's API "
                   "address, optionally the webhook URL of that host's team (repeatable)")
    p.add_argument("--alertmanager", default=None, metavar="URL",
                   help="the central Alertmanager Prometheus sends its alerts to")
    p.add_argument("--default-url", default=None, metavar="URL",
                   help="webhook for hosts without their own URL")
    p.add_argument("--scrape-interval", type=float, default=15, metavar="SECONDS")
    p.add_argument("--operator-down-for", type=float, default=60, metavar="SECONDS",
                   help="how long a host's /metrics may fail before AtlasOperatorDown fires")
    p.add_argument("--token-file", default=None,
                   help="bearer token file Prometheus sends (operators that authenticate reads)")
    p.add_argument("--root", default=".", help="tree whose Dashboard resources are exported")
    p.add_argument("--out", default="fleet", help="folder to write (default: fleet/)")
    p.set_defaults(func=cmd_fleet)


def cmd_fleet(args: Any) -> int:
    from autonomous.fleet.hosts import parse_host
    from autonomous.fleet.render import render_fleet
    from autonomous.resources.loader import load_tree

    try:
        hosts = [parse_host(h) for h in args.host]
    except ValueError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    result = load_tree(Path(args.root))
    if result.problems:
        for problem in result.problems:
            print(problem, file=sys.stderr)
        print(f"fleet: {args.root} has {len(result.problems)} problem(s); fix them first "
              "(atlas-autonomous validate)", file=sys.stderr)
        return 1
    assert result.tree is not None  # no problems: the tree is whole
    dashboards = {r.name: r.spec.model_dump() for r in result.tree.of_kind("Dashboard")}
    try:
        written = render_fleet(Path(args.out), hosts, dashboards,
                               alertmanager=args.alertmanager, default_url=args.default_url,
                               scrape_interval_s=args.scrape_interval,
                               token_file=args.token_file,
                               operator_down_for_s=args.operator_down_for)
    except ValueError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0
