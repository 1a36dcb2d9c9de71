"""Drill service: starts the operator's state from a restored backup and reports its health.

``python -m autonomous.resilience.drill_service --root RESTORED --port P`` opens the restored
``atlas.db`` with the operator's own :class:`Store` (migrating it as an operator start would),
runs ``PRAGMA integrity_check``, loads the restored desired_state/policies/config tree, and
serves ``GET /health``: 200 with the findings when all pass, 503 with the problems otherwise.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["inspect_restored", "main"]


def _first(row: sqlite3.Row | None) -> Any:
    """The first column of a one-row answer, or None when there is no row."""
    return None if row is None else row[0]


def inspect_restored(root: Path) -> dict[str, Any]:
    """What an operator start from ``root`` would find: DB integrity, schema, tree problems."""
    from autonomous.resources.loader import load_tree
    from autonomous.store import Store

    found: dict[str, Any] = {"root": str(root), "problems": []}
    db = root / "atlas.db"
    if db.exists():
        store = Store(db).open()
        try:
            found["integrity"] = _first(store.query_one("PRAGMA integrity_check"))
            found["schema_versions"] = store.schema_versions()
            found["kv_keys"] = _first(store.query_one("SELECT COUNT(*) FROM kv"))
        finally:
            store.close()
        if found["integrity"] != "ok":
            found["problems"].append(f"atlas.db integrity_check: {found['integrity']}")
    if (root / "desired_state").exists():
        result = load_tree(root)
        found["tree_problems"] = [str(p) for p in result.problems]
        found["problems"] += found["tree_problems"]
        found["generation_hash"] = result.hash
    if not db.exists() and not (root / "desired_state").exists():
        found["problems"].append("neither atlas.db nor desired_state/ was restored")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--port", required=True, type=int)
    args = ap.parse_args(argv)
    report = inspect_restored(args.root)
    status = 200 if not report["problems"] else 503
    body = json.dumps(report, default=str).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = status if self.path == "/health" else 404
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"drill service on 127.0.0.1:{args.port}: {status}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
