"""Proposal patches on a real git checkout: scalar edit, commit, inverse commit, conflicts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from autonomous.learning.proposal_patch import Patch, PatchConflict, apply_patch, commit_if_checkout

TEXT = """# learned thresholds
alerts:
  cpu:
    threshold: 0.8   # keep this comment
    window: 60
  list: [1, 2]
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


def test_apply_commit_and_revert(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "policies").mkdir()
    f = tmp_path / "policies" / "alerts.yaml"
    f.write_text(TEXT)
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "init")
    patch = Patch("policies/alerts.yaml", ("alerts", "cpu", "threshold"), 0.8, 0.9)
    new = apply_patch(tmp_path, patch)
    assert new == TEXT.replace("0.8 ", "0.9 ")
    assert yaml.safe_load(f.read_text())["alerts"]["cpu"]["threshold"] == 0.9
    sha = commit_if_checkout(tmp_path, patch.file, "learning: apply proposal p-1")
    assert sha and "p-1" in _git(tmp_path, "log", "-1", "--format=%s")
    with pytest.raises(PatchConflict, match="in force 0.9"):
        apply_patch(tmp_path, patch)
    apply_patch(tmp_path, patch.inverse())
    commit_if_checkout(tmp_path, patch.file, "learning: revert proposal p-1")
    assert f.read_text() == TEXT
    assert _git(tmp_path, "log", "--format=%s").splitlines()[:2] == [
        "learning: revert proposal p-1", "learning: apply proposal p-1"]


def test_not_a_checkout_and_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(TEXT)
    assert commit_if_checkout(tmp_path, "a.yaml", "x") is None
    with pytest.raises(PatchConflict, match="not present"):
        apply_patch(tmp_path, Patch("a.yaml", ("alerts", "mem"), 1, 2))
    with pytest.raises(PatchConflict, match="not a scalar"):
        apply_patch(tmp_path, Patch("a.yaml", ("alerts", "cpu"), 1, 2))
    apply_patch(tmp_path, Patch("a.yaml", ("alerts", "list", 1), 2, 3))
    assert yaml.safe_load((tmp_path / "a.yaml").read_text())["alerts"]["list"] == [1, 3]
