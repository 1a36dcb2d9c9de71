"""Stops by removal: a running Service whose file was deleted is stopped — explicitly.

``mark_core_removed`` (called at the end of the services controller's observe) marks a
running service that is no longer desired as ``core`` when the revision it runs was declared
``core: true``; the pure diff then plans its stop as kind ``stop_by_removal`` (gated by
``governance.actions.stop_by_removal``: require_approval in governed mode) instead of ``stop``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["REMOVED_REASON", "mark_core_removed", "removal_kind"]

REMOVED_REASON = "removed from the desired state: will be stopped"


def mark_core_removed(store: Any, observed: dict[str, Any], desired: Mapping[str, Any]) -> None:
    for name, o in list(observed.items()):
        if name in desired or not o.running or o.hash is None:
            continue
        row = store.query_one("SELECT spec FROM service_revisions WHERE service=? AND "
                              "spec_hash=?", (name, o.hash))
        if row is not None and json.loads(row["spec"]).get("core"):
            observed[name] = dataclasses.replace(o, core=True)


def removal_kind(o: Any) -> str:
    return "stop_by_removal" if getattr(o, "core", False) else "stop"
