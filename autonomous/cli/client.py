"""Talking to a running operator from the CLI: base URL and token from the root's config."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx

from autonomous.resources.loader import load_tree

__all__ = ["ApiClient", "add_client_args", "call_json", "local_time"]


def add_client_args(p: Any) -> None:
    p.add_argument("--root", default=".", help="folder holding desired_state/, policies/, config/")
    p.add_argument("--url", default=None, help="operator API URL (default: from config)")
    p.add_argument("--data-dir", default=None, help="where api-token lives (default: config)")


class ApiClient:
    def __init__(self, args: Any) -> None:
        root = Path(args.root)
        cfg = None
        tree = load_tree(root).tree if (root / "config").exists() else None
        if tree is not None:
            cfg = tree.config
        host = cfg.listen.host if cfg else "127.0.0.1"
        port = cfg.listen.port if cfg else 8791
        self.base = args.url or os.environ.get("ATLAS_AUTONOMOUS_URL") or f"http://{host}:{port}"
        data_dir = Path(args.data_dir) if args.data_dir else root / (cfg.data_dir if cfg
                                                                      else ".atlas-data")
        token = os.environ.get("ATLAS_AUTONOMOUS_TOKEN")
        if not token and (data_dir / "api-token").exists():
            token = (data_dir / "api-token").read_text().strip()
        self.token = token

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with httpx.Client(base_url=self.base, timeout=10, trust_env=False) as c:
            return c.request(method, path, headers=headers, **kw)


def call_json(client: Any, method: str, path: str, **kw: Any) -> Any:
    """The JSON answer of ``client.request``, or None after printing why it failed (the
    operator unreachable, or a 4xx/5xx with its ``detail``)."""
    try:
        r = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        print(f"cannot reach the operator at {client.base}: {exc}; is it running? start it "
              "with 'atlas-autonomous run' (or pass --url)", file=sys.stderr)
        return None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        print(f"{r.status_code}: {detail}", file=sys.stderr)
        return None
    return r.json()


def local_time(ts: float) -> str:
    """An epoch time as the reader's local date and time (what the CLI's tables show)."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")
