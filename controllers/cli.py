"""Entry point ``atlas-autonomous``: the autonomous CLI plus ``run`` and ``plan``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autonomous.cli.main import dispatch
from autonomous.core.errors import ValidationFailed
from autonomous.core.jsonlog import JsonFormatter, setup_console_logging

__all__ = ["main"]


def _register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the operator (controllers + API) until SIGTERM")
    p.add_argument("--root", default=".", help="folder holding desired_state/, policies/, config/")
    p.add_argument("--data-dir", default=None, help="data dir (default: config spec.data_dir)")
    p.add_argument("--host", default=None, help="listen address (default: spec.listen.host); "
                   "a non-loopback one needs spec.settings.api.authenticated_reads: true")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-format", choices=["auto", "json", "text"], default="auto",
                   help="console log: text when stderr is a terminal, JSON otherwise (auto)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="show what the controllers would do for a proposed tree")
    p.add_argument("--root", default=".", help="the proposed tree")
    p.add_argument("--data-dir", default=None, help="operator data dir (observed state; "
                   "default: the running operator's, asked over its API)")
    p.add_argument("--operator-root", default=".", help="the running operator's tree (its "
                   "config gives the API address and, when it is down, the data dir)")
    p.add_argument("--url", default=None, help="operator API URL (default: from config)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)


def cmd_run(args: Any) -> int:
    from controllers.operator import InsecureListen, Operator

    # files the operator creates (logs, Traefik's config and log, backups, work dirs) are
    # its user's alone, as under systemd's UMask=0077; the services it starts get the
    # conventional 022 back (autonomous/supervisor/processes.py SERVICE_UMASK)
    os.umask(0o077)
    setup_console_logging(args.log_level)
    _console_format(args.log_format)
    try:
        op = Operator(Path(args.root), data_dir=args.data_dir, host=args.host, port=args.port)
    except ValidationFailed as exc:
        print(exc, file=sys.stderr)
        print("refusing to start: fix the problems above", file=sys.stderr)
        return 1
    except InsecureListen as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        asyncio.run(op.serve())
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


class TextFormatter(JsonFormatter):
    """One human line per record, from the JSON record (so whatever the JSON formatter
    redacts stays redacted): ``HH:MM:SS level logger: message key=value …``."""

    def format(self, record: logging.LogRecord) -> str:
        out = json.loads(super().format(record))
        head = (f"{out.pop('ts')[11:19]} {out.pop('level').upper():7} {out.pop('logger')}: "
                f"{out.pop('message')}")
        exc = out.pop("exc", None)
        extra = " ".join(f"{k}={v}" for k, v in out.items())
        return head + (f" {extra}" if extra else "") + (f"\n{exc}" if exc else "")


def _console_format(choice: str) -> None:
    text = choice == "text" or (choice == "auto" and sys.stderr.isatty())
    if not text:
        return
    for h in logging.getLogger().handlers:
        if getattr(h, "_atlas_console", False):
            h.setFormatter(TextFormatter())


def cmd_plan(args: Any) -> int:
    from controllers.plan import plan

    data_dir = args.data_dir or _running_data_dir(args)
    return asyncio.run(plan(Path(args.root), data_dir, as_json=args.json))


def _running_data_dir(args: Any) -> str:
    """The running operator's data dir (from its API); when none answers, the data dir of the
    operator tree's config (never the proposed tree's), said on stderr."""
    import httpx

    from autonomous.cli.client import ApiClient
    from autonomous.resources.loader import load_tree

    client = ApiClient(argparse_ns(root=args.operator_root, url=args.url, data_dir=None))
    try:
        r = client.request("GET", "/api/reconcile/status")
        if r.status_code == 200 and r.json().get("data_dir"):
            return str(r.json()["data_dir"])
    except (httpx.HTTPError, ValueError):
        pass
    tree = load_tree(Path(args.operator_root)).tree
    ddir = Path(args.operator_root) / (tree.config.data_dir if tree else ".atlas-data")
    print(f"no operator answers at {client.base}: planning against the data dir {ddir} "
          "(start it with 'atlas-autonomous run', or pass --data-dir)", file=sys.stderr)
    return str(ddir)


def argparse_ns(**kw: Any) -> Any:
    import argparse

    return argparse.Namespace(**kw)


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(argv, extra=[_register])


if __name__ == "__main__":
    sys.exit(main())
