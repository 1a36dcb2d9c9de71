"""Read the existing ATLAS governance state (``modules/humanoid/governance/state.py`` writes it)
from a file or an HTTP endpoint and turn it into the mode it asks for.

The state is ``{"mode": "growth", "reason": "..."}`` (``state`` is accepted for ``mode``), or
the plain string ``emergency_stop`` / ``growth`` / ``governed``, as JSON or YAML. The three
ATLAS states are the operator's three modes: ``emergency_stop`` is the mode whose policy
overlay makes the resilience controller enter survival, ``growth`` runs optimizations
automatically, ``governed`` asks for approvals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from autonomous.governance.mode import MODES
from autonomous.resources.config.governance_bridge import FileSource, UrlSource

__all__ = ["BridgeState", "SourceError", "parse_state", "read_source"]


class SourceError(Exception):
    """The source cannot be read or does not name a mode."""


@dataclass(frozen=True)
class BridgeState:
    mode: str
    reason: str
    source: str


def parse_state(text: str, where: str) -> BridgeState:
    """Pure: the mode and reason a state document asks for."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SourceError(f"{where}: neither JSON nor YAML: {exc}") from None
    reason = None
    if isinstance(data, dict):
        raw = data.get("mode", data.get("state"))
        reason = data.get("reason")
    else:
        raw = data
    if not isinstance(raw, str) or raw.strip().lower() not in MODES:
        raise SourceError(f"{where}: mode {raw!r} is not one of {', '.join(MODES)}")
    mode = raw.strip().lower()
    text_reason = str(reason) if reason not in (None, "") else f"ATLAS governance state {mode}"
    return BridgeState(mode, f"{text_reason} (from {where})", where)


async def read_source(source: FileSource | UrlSource, root: Path) -> BridgeState:
    if isinstance(source, FileSource):
        path = Path(source.file)
        path = path if path.is_absolute() else root / path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: cannot read: {exc}") from None
        return parse_state(text, str(path))
    try:
        async with httpx.AsyncClient(timeout=source.timeout_seconds, trust_env=False) as c:
            resp = await c.get(source.url)
    except httpx.HTTPError as exc:
        raise SourceError(f"{source.url}: {type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise SourceError(f"{source.url}: HTTP {resp.status_code}")
    return parse_state(resp.text, source.url)
