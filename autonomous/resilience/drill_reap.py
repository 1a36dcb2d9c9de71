"""Drill leftovers of a killed operator: the drill service and ``/tmp/atlas-drill-*``.

Each drill folder holds ``owner.pid`` (the operator's pid) and, while the service runs,
``service.pid``. The drill service also gets PR_SET_PDEATHSIG, so it dies with its parent;
``reap_drills`` (run when the operator's resilience subsystem starts) kills a service still
listed by a folder whose owner is gone and removes the folder. Folders of a live operator are
left alone (several operators may share one host's /tmp, e.g. in tests).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

__all__ = ["PREFIX", "new_drill_dir", "reap_drills"]

PREFIX = "atlas-drill-"


def new_drill_dir() -> Path:
    """A fresh drill folder, marked with this process as its owner."""
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX))
    (tmp / "owner.pid").write_text(str(os.getpid()))
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def reap_drills(tmp_root: Path | None = None) -> list[str]:
    """Kill orphaned drill services and remove their folders; returns the folders removed."""
    root = Path(tmp_root or tempfile.gettempdir())
    removed: list[str] = []
    for d in sorted(root.glob(PREFIX + "*")):
        if not d.is_dir() or d.is_symlink() or d.stat().st_uid != os.getuid():
            continue
        owner = _pid(d / "owner.pid")
        if owner is not None and _alive(owner):
            continue
        child = _pid(d / "service.pid")
        if child is not None and _alive(child):
            try:
                os.killpg(child, signal.SIGKILL)  # the service leads its own session
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(d, ignore_errors=True)
        removed.append(str(d))
    return removed
