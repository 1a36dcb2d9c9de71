"""Where a restore may write: confined to ``<data_dir>/restores`` (or other allowed roots).

A target is refused (``RestoreTargetRefused``, a 4xx at the API) when it holds a NUL byte, a
component longer than the file system allows, a ``..`` component, when it lies outside every
allowed root (``/etc``, ``~/.ssh``, ``/sys`` ...), or when any existing folder between the
root and the target is a symlink (a restore never writes through a symlinked parent).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["RestoreTargetRefused", "confine_target"]

_NAME_MAX = 255
_PATH_MAX = 4096


class RestoreTargetRefused(ValueError):
    """The requested restore target is not allowed; the message says why and what is."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def confine_target(target: str, data_dir: Path,
                   allowed_roots: Iterable[Path] = ()) -> Path:
    """The absolute restore folder for ``target``, or raise ``RestoreTargetRefused``.

    Relative targets land under ``<data_dir>/restores``; absolute ones must lie under it or
    under one of ``allowed_roots``.
    """
    if "\x00" in target:
        raise RestoreTargetRefused("restore target contains a NUL byte")
    if len(target.encode("utf-8", "surrogateescape")) > _PATH_MAX:
        raise RestoreTargetRefused(f"restore target is longer than {_PATH_MAX} bytes")
    parts = Path(target).parts
    if any(len(p.encode("utf-8", "surrogateescape")) > _NAME_MAX for p in parts):
        raise RestoreTargetRefused(f"restore target has a name longer than {_NAME_MAX} bytes")
    if ".." in parts:
        raise RestoreTargetRefused(f"restore target {target!r} contains '..'")
    default = Path(os.path.realpath(Path(data_dir) / "restores"))
    roots = [default] + [Path(os.path.realpath(r)) for r in allowed_roots]
    path = Path(target)
    path = path if path.is_absolute() else default / path
    path = Path(os.path.normpath(path))
    root = next((r for r in roots if _inside(path, r)), None)
    if root is None:
        raise RestoreTargetRefused(
            f"restore target {str(path)!r} is outside the allowed restore folders "
            f"({', '.join(map(str, roots))}); give a relative target to restore under "
            f"{default}")
    probe = path
    while probe != root:
        if probe.is_symlink():
            raise RestoreTargetRefused(f"restore target goes through symlink {str(probe)!r}")
        probe = probe.parent
    return path
