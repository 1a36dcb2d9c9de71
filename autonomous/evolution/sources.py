"""Offline update sources, ordered by PEP 440 (``packaging``), and the scan over them.

* :class:`WheelDir` — a local directory of wheels of one distribution;
* :class:`ReleaseDir` — a directory of releases named ``<name>-<version>[.<ext>]``;
* :class:`GitTags` — the tags of a service's repository (``git tag --list``, argv), optionally
  with a prefix such as ``v``. Git's own tag sort puts ``1.1.0rc1`` above ``1.1.0``; PEP 440
  order does not.

:func:`scan` returns the newest version above the running one that is not quarantined
(pre-releases only when asked), as a :class:`Proposal`: the Service's desired-state patch.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from autonomous.resources.kinds.evolution import SourceSpec

__all__ = ["GitTags", "Proposal", "ReleaseDir", "Source", "WheelDir", "expand_command",
           "from_spec", "scan"]


class Source(Protocol):
    def versions(self) -> dict[Version, str]:
        """version → where it comes from (a path, a tag)."""
        ...


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class WheelDir:
    path: Path
    distribution: str

    def versions(self) -> dict[Version, str]:
        out: dict[Version, str] = {}
        want = canonicalize_name(self.distribution)
        for whl in sorted(self.path.glob("*.whl")):
            try:
                name, version, _build, _tags = parse_wheel_filename(whl.name)
            except InvalidWheelFilename:
                continue
            if name == want:
                out[version] = str(whl)
        return out


@dataclass(frozen=True)
class ReleaseDir:
    path: Path
    name: str

    def versions(self) -> dict[Version, str]:
        out: dict[Version, str] = {}
        pat = re.compile(rf"^{re.escape(self.name)}-(.+?)(\.tar\.gz|\.tgz|\.zip|\.whl)?$")
        for entry in sorted(self.path.iterdir()):
            m = pat.match(entry.name)
            v = _version(m.group(1)) if m else None
            if v is not None:
                out[v] = str(entry)
        return out


@dataclass(frozen=True)
class GitTags:
    repo: Path
    prefix: str = "v"

    def versions(self) -> dict[Version, str]:
        res = subprocess.run(["git", "-C", str(self.repo), "tag", "--list"],
                             capture_output=True, text=True, timeout=10, check=True)
        out: dict[Version, str] = {}
        for tag in res.stdout.split():
            if tag.startswith(self.prefix):
                v = _version(tag[len(self.prefix):])
                if v is not None:
                    out[v] = tag
        return out


@dataclass(frozen=True)
class Proposal:
    service: str
    current: str
    version: str
    origin: str

    def patch(self) -> dict[str, dict[str, str]]:
        """The desired-state change (merged into the Service's ``spec``)."""
        return {"spec": {"version": self.version}}


def scan(service: str, current: str, sources: list[Source], *,
         quarantined: Collection[str] = (), prereleases: bool = False) -> Proposal | None:
    cur = _version(current)
    found: dict[Version, str] = {}
    for src in sources:
        found.update(src.versions())
    candidates = sorted((v for v in found
                         if (cur is None or v > cur) and str(v) not in quarantined
                         and (prereleases or not v.is_prerelease)), reverse=True)
    if not candidates:
        return None
    best = candidates[0]
    return Proposal(service, current, str(best), found[best])


def from_spec(spec: SourceSpec, root: Path, service: str) -> Source:
    """The source an ``UpdateSource`` entry declares (relative paths: from ``root``)."""
    path = Path(spec.path) if Path(spec.path).is_absolute() else root / spec.path
    if spec.kind == "wheel_dir":
        return WheelDir(path, spec.name or service)
    if spec.kind == "release_dir":
        return ReleaseDir(path, spec.name or service)
    return GitTags(path, spec.prefix)


def expand_command(template: list[str] | None, proposal: Proposal) -> list[str] | None:
    """``{version}`` and ``{source}`` in the declared argv; the rest (``{python}``,
    ``{port}``) is left for the one that runs it."""
    if template is None:
        return None
    return [a.replace("{version}", proposal.version).replace("{source}", proposal.origin)
            for a in template]
