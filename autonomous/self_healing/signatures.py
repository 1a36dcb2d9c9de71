"""Error signatures: the same failure gives the same text, whatever its numbers and ids.

``normalise`` (the one normaliser, ``autonomous.core.signature``) strips what changes between
occurrences (numbers, hex ids, UUIDs, paths, addresses, quoted values); ``error_signature``
builds ``service|source|detail|text`` from a report's stable parts. ``similarity`` is a token Jaccard used to find similar failures.
"""

from __future__ import annotations

import re

from autonomous.core.signature import MAX_TEXT, normalise

__all__ = ["MAX_TEXT", "error_signature", "normalise", "similarity", "tokens"]

_TOKEN = re.compile(r"<\w+>|[a-z_]+", re.IGNORECASE)


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
