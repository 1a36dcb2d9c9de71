"""Error signatures: the same failure gives the same text, whatever its numbers and ids.

``normalise`` strips what changes between occurrences (numbers, hex ids, UUIDs, paths,
addresses, quoted values); ``error_signature`` builds ``service|source|detail|text`` from a
report's stable parts. ``similarity`` is a token Jaccard used to find similar failures.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEXT", "error_signature", "normalise", "similarity", "tokens"]

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

_TOKEN = re.compile(r"<\w+>|[a-z_]+", re.IGNORECASE)


def normalise(text: str) -> str:
    """Strip numbers, ids, UUIDs, paths, addresses and quoted values; collapse blanks."""
    out = text or ""
    for pattern, repl in _RULES:
        out = pattern.sub(repl, out)
    return out.strip()[:MAX_TEXT]


def error_signature(service: str, source: str, detail: str = "", text: str = "") -> str:
    """``service|source|detail|normalised text``: ``detail`` (e.g. ``rc=-9``) is kept as is."""
    return "|".join((service, source, detail, normalise(text)))


def tokens(signature: str) -> frozenset[str]:
    """Lower-case word tokens of a signature (placeholders count as tokens)."""
    return frozenset(t.lower() for t in _TOKEN.findall(signature))


def similarity(a: str, b: str) -> float:
    """Token Jaccard similarity of two signatures, 0..1."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)
