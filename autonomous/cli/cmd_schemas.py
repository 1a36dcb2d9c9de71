"""schemas: write or check the committed JSON Schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autonomous.resources.jsonschema import generate, stale, write

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("schemas", help="write (or --check) JSON Schemas generated from the models")
    p.add_argument("--dir", default="schemas")
    p.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    p.set_defaults(func=cmd_schemas)


def cmd_schemas(args: Any) -> int:
    dest = Path(args.dir)
    if args.check:
        bad = stale(dest)
        for name in bad:
            print(f"{dest / name}: stale; run 'atlas-autonomous schemas' and commit the result")
        if not bad:
            print(f"ok: {len(generate())} schemas in {dest}/ match the models")
        return 1 if bad else 0
    for name in write(dest):
        print(dest / name)
    return 0
