"""Update sources in PEP 440 order: wheel dir, release dir, real git tags."""

from __future__ import annotations

import subprocess
from pathlib import Path

from autonomous.evolution.sources import GitTags, ReleaseDir, WheelDir, scan


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                        "PATH": "/usr/bin:/bin"})


def test_git_tags_rc_below_final(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    for tag in ("v1.0.0", "v1.1.0", "v1.1.0rc1", "v1.10.0a1", "not-a-version"):
        _git(repo, "tag", tag)
    p = scan("nexus", "1.0.0", [GitTags(repo)])
    assert p is not None and p.version == "1.1.0" and p.origin == "v1.1.0"
    assert p.patch() == {"spec": {"version": "1.1.0"}}
    pre = scan("nexus", "1.0.0", [GitTags(repo)], prereleases=True)
    assert pre is not None and pre.version == "1.10.0a1"
    assert scan("nexus", "1.1.0", [GitTags(repo)]) is None
    assert scan("nexus", "1.0.0", [GitTags(repo)], quarantined={"1.1.0"}) is None


def test_wheel_and_release_dirs(tmp_path: Path) -> None:
    wheels, rel = tmp_path / "wheels", tmp_path / "releases"
    wheels.mkdir()
    rel.mkdir()
    for name in ("sample_nexus-1.2.0-py3-none-any.whl", "sample_nexus-1.3.0rc2-py3-none-any.whl",
                 "other-9.0-py3-none-any.whl", "garbage.whl"):
        (wheels / name).write_bytes(b"")
    (rel / "robot-2.0.tar.gz").write_bytes(b"")
    (rel / "robot-x.y.zip").write_bytes(b"")
    (rel / "robot-2.1").mkdir()
    assert sorted(map(str, WheelDir(wheels, "sample-nexus").versions())) == ["1.2.0", "1.3.0rc2"]
    assert sorted(map(str, ReleaseDir(rel, "robot").versions())) == ["2.0", "2.1"]
    p = scan("robot", "2.0", [ReleaseDir(rel, "robot"), WheelDir(wheels, "robot")])
    assert p is not None and p.version == "2.1" and p.origin.endswith("robot-2.1")
