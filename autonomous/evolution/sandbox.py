"""The sandbox's data: a candidate checked before any traffic reaches it runs on a COPY.

Before the sandbox step the vetting flow snapshots the Service's declared data paths on the one
backup engine (``checks.snapshot_paths``). :func:`prepare` restores that snapshot into a fresh
sandbox folder (the engine's byte-identical restore: one sub-folder per snapshot source,
``<label>/...``) and returns a :class:`SandboxData` that points the candidate at it:

* its working directory is the sandbox folder (a relative data path it opens lands there);
* every argv element and env value naming a snapshotted live path (absolute, or relative to
  the root, also as ``--opt=PATH``) names the copy instead; other relative paths that name a
  file in the root (a script) are made absolute, so they still resolve from the new cwd;
* ``ATLAS_SANDBOX_DIR`` is the folder.

So a failing candidate (a migration that corrupts its data file, say) never touches live data
before its rollout. :func:`changed_files` reports which copied files the candidate changed —
the evidence of what the update touches. :func:`discard` removes the folder. No snapshot
declared: the folder is empty (still the cwd), argv and env are unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autonomous.backup.manifest import Manifest
from autonomous.evolution.data_restore import file_sha256

__all__ = ["SANDBOX_ENV", "SandboxData", "changed_files", "discard", "prepare"]

SANDBOX_ENV = "ATLAS_SANDBOX_DIR"


@dataclass(frozen=True)
class SandboxData:
    dir: Path
    root: Path
    mapping: dict[str, str] = field(default_factory=dict)  # live absolute path -> its copy
    snapshot: str | None = None

    def path(self, token: str) -> str:
        """``token`` as the candidate must see it (see the module docstring)."""
        if not token or token.startswith("-") and "=" not in token:
            return token
        if token.startswith("-"):
            opt, _, value = token.partition("=")
            return f"{opt}={self.path(value)}" if value else token
        p = token if os.path.isabs(token) else os.path.join(self.root, token)
        p = os.path.normpath(p)
        for live, copy in self.mapping.items():
            if p == live or p.startswith(live.rstrip(os.sep) + os.sep):
                return copy + p[len(live):]
        if not os.path.isabs(token) and os.path.isfile(p):
            return p  # a script or config of the root: still found from the sandbox cwd
        return token

    def argv(self, argv: list[str]) -> list[str]:
        return [self.path(a) for a in argv]

    def env(self, env: dict[str, str]) -> dict[str, str]:
        return {**{k: self.path(v) if os.sep in v else v for k, v in env.items()},
                SANDBOX_ENV: str(self.dir)}


def prepare(folder: Path, root: Path, manifest: Manifest | None,
            restore: Callable[[str, Path], object] | None = None) -> SandboxData:
    """A fresh ``folder``; with ``manifest``, ``restore(manifest.id, folder)`` (the backup
    engine's restore) fills it. Returns where each live path's copy is."""
    discard(folder)
    if manifest is None:
        folder.mkdir(parents=True)
        return SandboxData(folder, Path(root))
    if restore is None:
        raise ValueError("a snapshot to restore needs the engine's restore")
    restore(manifest.id, folder)
    mapping = {os.path.normpath(live): str(folder / label)
               for label, live in manifest.sources.items()}
    return SandboxData(folder, Path(root), mapping, manifest.id)


def changed_files(data: SandboxData, manifest: Manifest | None) -> list[str]:
    """Snapshot files (as live paths) the candidate changed or deleted in its copy."""
    if manifest is None:
        return []
    out = []
    for e in manifest.entries:
        if e.type == "file" and file_sha256(data.dir / e.path) != e.sha256:
            label, _, rest = e.path.partition("/")
            live = manifest.sources[label]
            out.append(os.path.join(live, rest) if rest else live)
    return sorted(out)


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
