"""Parser assembly: discovers ``autonomous/cli/cmd_*.py`` modules."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Sequence

__all__ = ["build_parser", "dispatch"]


def build_parser(extra: Sequence[Callable[[argparse._SubParsersAction], None]] = ()) \
        -> argparse.ArgumentParser:
    from autonomous import __version__, cli

    parser = argparse.ArgumentParser(prog="atlas-autonomous",
                                     description="ATLAS Autonomous: a one-host operator")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{cli.__name__}.{info.name}").register(sub)
    for reg in extra:
        reg(sub)
    return parser


def dispatch(argv: Sequence[str] | None, extra: Sequence[Callable] = ()) -> int:
    parser = build_parser(extra)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
