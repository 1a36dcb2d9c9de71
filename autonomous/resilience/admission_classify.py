"""Admission, step 1: classify a request — its :class:`Priority`, or None for a never-shed
path — from the ``resilience.admission`` policy section alone (pure, no state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autonomous.resilience.priority_queue import Priority

__all__ = ["ClassifyCache", "classify", "never_shed"]


def classify(adm: Mapping[str, Any], path: str, headers: Mapping[str, str] | None = None,
             method: str = "") -> Priority | None:
    """Priority of a request under the policy's ``admission`` section ``adm``; None for
    never-shed paths. A header beats the route map.

    A ``never_shed`` entry is a path prefix (any method) or ``"GET <prefix>"``: reads
    only (GET and HEAD), so observing status, alerts and health is never shed while
    their mutating routes are."""
    verb = method.upper()
    if any(never_shed(rule, path, verb) for rule in adm["never_shed"]):
        return None
    value = (headers or {}).get(adm["priority_header"].lower())
    if value:
        try:
            return Priority.parse(value)
        except ValueError:
            pass  # an unknown header value falls back to the route map
    best = max((r for r in adm["routes"] if path.startswith(r["prefix"])),
               key=lambda r: len(r["prefix"]), default=None)
    return Priority.parse(best["priority"] if best else adm["default_priority"])


class ClassifyCache:
    """:func:`classify` with the path's part (never-shed rules, route map) remembered per
    ``(path, method)`` for the policy section in force; the header is read on every request.
    Scanning every never-shed rule per request cost a fourteenth of the serving loop's time
    under load (py-spy). Bounded: cleared when full or when the policy section changes."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._adm: Mapping[str, Any] | None = None
        self._paths: dict[tuple[str, str], Priority | None] = {}

    def classify(self, adm: Mapping[str, Any], path: str,
                 headers: Mapping[str, str] | None = None, method: str = "") -> Priority | None:
        if adm is not self._adm:
            self._adm, self._paths = adm, {}
        key = (path, method.upper())
        if key in self._paths:
            routed = self._paths[key]
        else:
            routed = classify(adm, path, None, method)
            if len(self._paths) >= self.size:
                self._paths.clear()
            self._paths[key] = routed
        if routed is None:
            return None
        value = (headers or {}).get(adm["priority_header"].lower())
        if value:
            try:
                return Priority.parse(value)
            except ValueError:
                pass
        return routed


def never_shed(rule: str, path: str, method: str) -> bool:
    """Whether the ``never_shed`` entry ``rule`` (``"<prefix>"`` or ``"GET <prefix>"``)
    covers a request (``method`` upper case)."""
    verb, _, prefix = rule.partition(" ") if " " in rule else ("", "", rule)
    if verb and not (method == verb.upper() or (verb.upper() == "GET" and method == "HEAD")):
        return False
    return path == prefix or path.startswith(prefix)
