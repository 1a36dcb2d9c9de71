"""Governance bridge config (``spec.settings.governance_bridge``): where the existing ATLAS
governance state (``emergency_stop`` / ``growth`` / ``governed``) is read from, and how often.

``source: null`` turns the bridge off (the mode is switched only through the API / CLI).
"""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "FileSource", "GovernanceBridgeSettings", "UrlSource"]


class FileSource(Strict):
    file: str = Field(min_length=1, description="JSON or YAML state file (relative to the "
                      "root): {mode: growth, reason: ...} or the plain mode string")


class UrlSource(Strict):
    url: str = Field(pattern=r"^https?://", description="HTTP endpoint answering the same "
                     "JSON (or a plain mode string)")
    timeout_seconds: float = Field(2.0, gt=0, le=60, description="Per-request timeout")


class GovernanceBridgeSettings(Strict):
    source: FileSource | UrlSource | None = Field(description="Where the ATLAS governance "
                                                  "state is read; null: bridge off")
    interval_seconds: float = Field(gt=0, le=10, description="How often the source is read "
                                    "(at most 10: the manager's default period)")


SECTIONS = {"governance_bridge": GovernanceBridgeSettings}
