"""Carrying out a proposal on the tree: write the patch, commit it in a git checkout (argv
``git``, a message naming the proposal), and reload so it becomes the new generation.

A write the desired-state loader rejects is undone byte for byte (the file's previous text is
put back) and reported; nothing half-applied stays in the tree.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from autonomous.desired import DesiredStateManager
from autonomous.resources.loader import load_tree
from autonomous.learning.proposal_patch import Patch, apply_patch, commit_if_checkout

__all__ = ["Applied", "ApplyRejected", "write_patch"]


class ApplyRejected(Exception):
    """The patched tree did not validate; the file was restored."""


@dataclass(frozen=True)
class Applied:
    commit: str | None
    generation: int | None


def write_patch(root: Path, desired: DesiredStateManager, patch: Patch, message: str) -> Applied:
    """Apply ``patch``, validate the whole tree, commit, then install it as a generation (so
    the generation records the new commit)."""
    target = root / patch.file
    if _uncommitted(root, patch.file):
        raise ApplyRejected(f"{patch.file} has uncommitted edits; commit them first, so the "
                            "proposal's commit holds the proposal alone")
    before = target.read_bytes()
    apply_patch(root, patch)
    result = load_tree(root, limits=desired.limits())
    if result.tree is None:
        target.write_bytes(before)
        problems = "; ".join(str(p) for p in result.problems[:3])
        raise ApplyRejected(f"{patch.file}: the patched tree is invalid ({problems}); restored")
    commit = commit_if_checkout(root, patch.file, message)
    desired.reload(result)
    current = desired.current
    return Applied(commit, current.number if current is not None else None)


def _uncommitted(root: Path, file: str) -> bool:
    """True when ``file`` differs from HEAD in a git checkout (False outside one)."""
    r = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", file],
                       capture_output=True, text=True, check=False)
    return r.returncode == 0 and bool(r.stdout.strip())
