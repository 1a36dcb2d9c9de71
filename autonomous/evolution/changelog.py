"""The evolution changelog: one Keep a Changelog entry per update decision, with its evidence.

``<data_dir>/evolution/CHANGELOG.md`` (https://keepachangelog.com/en/1.1.0/): a ``# Changelog``
title, then one ``## [<service> <version>] - <YYYY-MM-DD>`` section per finished rollout,
newest first, its change under ``### Changed`` (committed) or ``### Removed`` (rolled back:
the version was withdrawn and quarantined), with the decision's reason and the judge's
figures. Written atomically (temp file + rename); a section for the same rollout id is not
written twice (the id is in an HTML comment), so a resumed operator does not duplicate it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = ["append_entry", "entry"]

_HEAD = ("# Changelog\n\nAll updates the ATLAS operator rolled out or rolled back, newest "
         "first.\nThe format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/)."
         "\n")
_FIGURES = ("verdict", "score", "median_ratio", "baseline_n", "candidate_n", "rounds",
            "round_p", "desired_state")


def entry(rollout_id: int, service: str, from_version: str, to_version: str, status: str,
          reason: str, evidence: dict[str, Any], ts: float) -> str:
    day = time.strftime("%Y-%m-%d", time.gmtime(ts))
    kind = "Changed" if status == "committed" else "Removed"
    what = (f"{service} {from_version} → {to_version}: committed" if status == "committed"
            else f"{service} {to_version}: rolled back to {from_version} and quarantined")
    figures = ", ".join(f"{k} {evidence[k]:.3g}" if isinstance(evidence[k], float)
                        else f"{k} {evidence[k]}" for k in _FIGURES
                        if evidence.get(k) is not None)
    return (f"## [{service} {to_version}] - {day}\n<!-- rollout {rollout_id} -->\n\n"
            f"### {kind}\n\n- {what} ({reason})" + (f"\n- evidence: {figures}" if figures
                                                     else "") + "\n")


def append_entry(path: Path, rollout_id: int, text: str) -> bool:
    """Insert ``text`` as the newest section; False when the rollout already has one."""
    old = path.read_text(encoding="utf-8") if path.exists() else _HEAD
    if f"<!-- rollout {rollout_id} -->" in old:
        return False
    head, sep, rest = old.partition("\n## ")
    new = f"{head.rstrip()}\n\n{text}" + (f"\n## {rest}" if sep else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return True
