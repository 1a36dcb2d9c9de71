"""A tools registry with Prometheus counters: what NEXUS's ``tools/tools_registry.py`` needs
to be observed by the operator.

Each call is counted by tool and outcome and timed; ``lines()`` writes the counters in the
exposition format for the service's ``/metrics``, which the operator's health monitor scrapes
(the operator is never in the tool's path) and stores as ``tools.calls_total`` and
``tools.latency_ms``. A failed call is logged at ERROR with the tool's name, so the Tools
dashboard's log panel (query ``tool``) finds it. Embeddable: no import from the sample service;
the real registry passes its own ``log_error``::

    reg = ToolsRegistry(log_error=lambda msg, **f: logger.error(msg, extra=f))
    reg.register("checksum", checksum)
    reg.call("checksum", {"text": "abc"})

The sample services register four small, real, side-effect-free tools (``BUILTIN``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

__all__ = ["BUILTIN", "ToolError", "ToolsRegistry", "UnknownTool"]

Tool = Callable[[Any], Any]


class ToolError(ValueError):
    """The tool could not do what it was asked (bad input): a failed call, not a crash."""


class UnknownTool(KeyError):
    """No tool by that name is registered."""


def _text(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return str(payload["text"])
    raise ToolError('input must be an object with a string "text"')


def checksum(payload: Any) -> dict[str, Any]:
    """SHA-256 of ``text`` (UTF-8)."""
    data = _text(payload).encode()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def word_count(payload: Any) -> dict[str, Any]:
    """Words, lines and characters of ``text``."""
    t = _text(payload)
    return {"words": len(t.split()), "lines": t.count("\n") + (1 if t else 0), "chars": len(t)}


def json_validate(payload: Any) -> dict[str, Any]:
    """Parse ``text`` as JSON: its top-level type, or the parse error (a failed call)."""
    try:
        value = json.loads(_text(payload))
    except json.JSONDecodeError as exc:
        raise ToolError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return {"valid": True, "type": type(value).__name__}


def clock(payload: Any) -> dict[str, Any]:
    """The host's UTC time and monotonic clock."""
    return {"utc": datetime.now(timezone.utc).isoformat(), "monotonic_s": time.monotonic()}


BUILTIN: dict[str, Tool] = {"checksum": checksum, "word_count": word_count,
                            "json_validate": json_validate, "clock": clock}


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ToolsRegistry:
    """Named tools, each call counted (``ok`` / ``error``) and timed; thread-safe."""

    def __init__(self, tools: dict[str, Tool] | None = None, *,
                 log_error: Callable[..., None] | None = None) -> None:
        self._tools: dict[str, Tool] = dict(tools or {})
        self._log_error = log_error
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}  # (tool, outcome) → calls
        self._seconds: dict[str, float] = {}  # tool → summed duration

    def register(self, name: str, fn: Tool) -> None:
        """Add (or replace) the tool ``name``."""
        with self._lock:
            self._tools[name] = fn

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._tools)

    def call(self, name: str, payload: Any) -> tuple[Any, float]:
        """Run tool ``name`` on ``payload``: (its output, seconds). Raises UnknownTool, or
        ToolError (counted as an error and logged) when the tool refuses its input."""
        with self._lock:
            fn = self._tools.get(name)
        if fn is None:
            raise UnknownTool(name)
        t0 = time.perf_counter()
        try:
            out = fn(payload)
        except ToolError as exc:
            seconds = time.perf_counter() - t0
            self._count(name, "error", seconds)
            if self._log_error is not None:
                self._log_error(f"tool {name} failed: {exc}", tool=name, error=str(exc))
            raise
        seconds = time.perf_counter() - t0
        self._count(name, "ok", seconds)
        return out, seconds

    def _count(self, name: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._calls[(name, outcome)] = self._calls.get((name, outcome), 0) + 1
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def lines(self) -> list[str]:
        """``atlas_tool_calls_total{tool,outcome}`` and ``atlas_tool_duration_seconds_sum`` /
        ``_count{tool}`` in the exposition format (empty before the first call)."""
        with self._lock:
            calls = sorted(self._calls.items())
            secs = sorted(self._seconds.items())
        if not calls:
            return []
        per_tool: dict[str, int] = {}
        for (tool, _), n in calls:
            per_tool[tool] = per_tool.get(tool, 0) + n
        out = ["# HELP atlas_tool_calls_total Tool calls, by tool and outcome.",
               "# TYPE atlas_tool_calls_total counter"]
        out += [f'atlas_tool_calls_total{{tool="{_esc(t)}",outcome="{o}"}} {n}'
                for (t, o), n in calls]
        out += ["# HELP atlas_tool_duration_seconds Time spent in each tool.",
                "# TYPE atlas_tool_duration_seconds summary"]
        for tool, s in secs:
            out.append(f'atlas_tool_duration_seconds_sum{{tool="{_esc(tool)}"}} {s!r}')
            out.append(f'atlas_tool_duration_seconds_count{{tool="{_esc(tool)}"}} '
                       f"{per_tool.get(tool, 0)}")
        return out
