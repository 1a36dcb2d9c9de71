"""The one error-signature normaliser: the same failure gives the same text, whatever its
numbers and ids.

``normalise`` replaces what changes between occurrences (UUIDs, hex addresses and ids, IP
addresses and ports, paths, quoted values, numbers) by placeholders and collapses blanks. The
log collector's error groups and self-healing's failure signatures both build on it, so a
failure seen in a log line and in a healing report gets the same normalised text.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "normalise"]

#: Default length of a normalised text (a signature is a key, not a log line).
MAX_TEXT = 160

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
     "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<addr>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\blocalhost:\d+\b", re.IGNORECASE), "localhost:<port>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-+@~]+){2,}/?"), "<path>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.IGNORECASE), "<id>"),
    (re.compile(r"'[^']{0,200}'|\"[^\"]{0,200}\""), "<str>"),
    (re.compile(r"(?<![A-Za-z_<])[-+]?\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` with numbers, ids, UUIDs, paths, addresses and quoted values replaced by
    placeholders, blanks collapsed, cut to ``limit`` characters."""
    out = text or ""
    for pattern, repl in _RULES:
        out = pattern.sub(repl, out)
    return out.strip()[:limit]
