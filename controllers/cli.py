"""Entry point ``atlas-autonomous``: the autonomous CLI plus ``run`` and ``plan``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autonomous.cli.main import dispatch
from autonomous.core.errors import ValidationFailed
from autonomous.core.jsonlog import setup_console_logging

__all__ = ["main"]


def _register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the operator (controllers + API) until SIGTERM")
    p.add_argument("--root", default=".", help="folder holding desired_state/, policies/, config/")
    p.add_argument("--data-dir", default=None, help="data dir (default: config spec.data_dir)")
    p.add_argument("--host", default=None, help="listen address (default: spec.listen.host); "
                   "a non-loopback one needs spec.settings.api.authenticated_reads: true")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("plan", help="show what the controllers would do for a proposed tree")
    p.add_argument("--root", default=".", help="the proposed tree")
    p.add_argument("--data-dir", default=None, help="operator data dir (observed state)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)


def cmd_run(args: Any) -> int:
    from controllers.operator import InsecureListen, Operator

    setup_console_logging(args.log_level)
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


def cmd_plan(args: Any) -> int:
    from controllers.plan import plan

    return asyncio.run(plan(Path(args.root), args.data_dir, as_json=args.json))


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(argv, extra=[_register])


if __name__ == "__main__":
    sys.exit(main())
