"""Feature flags of a sample service.

A service declares a set of features (from its profile, or ``--features``); each is on or off.
``GET /features`` shows them, ``PUT /features`` switches them (survival/degrade mode turns
non-core ones off), and a work endpoint guarded by a declared-but-disabled feature answers
503 ``{"error": "feature disabled"}``. An endpoint whose feature is not declared at all does
not exist on that service (404).

Profiles: ``nexus`` has motion, heartbeat (core in the default desired state) and planning
(smooth minimum-jerk trajectories; off → straight-line moves); ``robot`` has sensors (core) and
vision. Any other name has no features and serves only the generic endpoints.
"""

from __future__ import annotations

import threading

from autonomous.sample_stack.errors import BadRequest

__all__ = ["PROFILES", "FeatureError", "Features", "parse_feature_list"]

PROFILES: dict[str, tuple[str, ...]] = {
    "nexus": ("motion", "heartbeat", "planning"),
    "robot": ("sensors", "vision"),
}

_ON = {"on", "true", "1", "yes"}
_OFF = {"off", "false", "0", "no"}


class FeatureError(BadRequest):
    """A bad feature list or update; the message names the offender and what is allowed."""


def parse_feature_list(text: str) -> dict[str, bool]:
    """``"a,b=off,c"`` → ``{"a": True, "b": False, "c": True}``."""
    out: dict[str, bool] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, state = item.partition("=")
        name, state = name.strip(), state.strip().lower()
        if not name.replace("_", "").replace("-", "").isalnum():
            raise FeatureError(f"features: {name!r} is not a feature name (letters, digits, _ -)")
        if state and state not in _ON | _OFF:
            raise FeatureError(f"features: {item!r}: state must be one of on, off")
        out[name] = state not in _OFF
    return out


class Features:
    """The declared features of one service and whether each is on. Thread-safe."""

    def __init__(self, initial: dict[str, bool]) -> None:
        self._lock = threading.Lock()
        self._flags = dict(initial)

    @classmethod
    def for_profile(cls, name: str) -> Features:
        """All features of the profile matching ``name`` (e.g. ``nexus-canary`` → nexus), on."""
        for profile, feats in PROFILES.items():
            if name == profile or name.startswith(profile + "-"):
                return cls({f: True for f in feats})
        return cls({})

    def snapshot(self) -> dict[str, bool]:
        """A copy of {name: enabled}."""
        with self._lock:
            return dict(self._flags)

    def declared(self, name: str) -> bool:
        """Whether the service has this feature at all."""
        with self._lock:
            return name in self._flags

    def enabled(self, name: str) -> bool:
        """Whether the feature is declared and on."""
        with self._lock:
            return self._flags.get(name, False)

    def update(self, body: object) -> dict[str, bool]:
        """Apply ``{"features": {name: bool}}`` all-or-nothing; return the new snapshot."""
        if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
            raise FeatureError('body: expected {"features": {"<name>": true|false, ...}}')
        extra = sorted(set(body) - {"features"})
        if extra:
            raise FeatureError(f"body: unknown field(s) {', '.join(extra)}; allowed: features")
        changes: dict[str, bool] = body["features"]
        with self._lock:
            problems = [p for k, v in changes.items() if (p := _problem(k, v, self._flags))]
            if problems:
                raise FeatureError("; ".join(problems))
            self._flags.update(changes)
            return dict(self._flags)


def _problem(name: object, value: object, known: dict[str, bool]) -> str | None:
    if name not in known:
        allowed = ", ".join(sorted(known)) or "(this service declares no features)"
        return f"features.{name}: unknown feature; allowed: {allowed}"
    if not isinstance(value, bool):
        return f"features.{name}: {value!r} is not a boolean; allowed: true, false"
    return None
