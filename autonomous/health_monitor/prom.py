"""Reading request counters from a Prometheus text exposition (``/metrics``).

``request_totals(text)`` sums every ``*_requests_total`` counter sample (any labels) into
``(total, errors)``, where errors are samples labelled ``code``/``status`` 5xx; samples
labelled ``path="/metrics"`` (the scrapes themselves) are left out. Throughput and
request error rate come from the difference between two scrapes.

``tool_totals(text)`` reads the tools registry's counters (``atlas_tool_calls_total{tool,
outcome}``, ``atlas_tool_duration_seconds_sum{tool}``): per tool ``(calls, errors, seconds)``.
"""

from __future__ import annotations

import re

__all__ = ["request_totals", "tool_totals"]

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def request_totals(text: str) -> tuple[float, float] | None:
    """``(requests, 5xx errors)`` summed over request counters, or None if there are none."""
    total = errors = 0.0
    found = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None or not m.group(1).endswith("requests_total"):
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        found = True
        labels = dict(_LABEL.findall(m.group(2) or ""))
        if labels.get("path") == "/metrics":
            continue
        total += value
        code = labels.get("code") or labels.get("status") or ""
        if code.startswith("5"):
            errors += value
    return (total, errors) if found else None


def tool_totals(text: str) -> dict[str, tuple[float, float, float]]:
    """Per tool ``(calls, errors, seconds spent)`` from a tools registry's counters; empty
    when the exposition has none (a service without tools, or none called yet)."""
    calls: dict[str, float] = {}
    errors: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("atlas_tool_"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        tool = labels.get("tool")
        if not tool:
            continue
        if m.group(1) == "atlas_tool_calls_total":
            calls[tool] = calls.get(tool, 0.0) + value
            if labels.get("outcome") == "error":
                errors[tool] = errors.get(tool, 0.0) + value
        elif m.group(1) == "atlas_tool_duration_seconds_sum":
            seconds[tool] = value
    return {t: (n, errors.get(t, 0.0), seconds.get(t, 0.0)) for t, n in calls.items()}
