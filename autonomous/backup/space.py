"""Refusing a backup that would not fit: the one check before a backup writes anything.

Disk pressure must not be made worse by a backup that fills the repository's file system half
way. Before any chunk is written, the bytes the backup may add are bounded from above: every
file that is not unchanged since the plan's latest backup (size, mtime, ctime and inode
equal: its chunks are reused) counts its full size (dedup and compression only make it
smaller), and an SQLite file counts twice (its online copy goes to the repository's tmp/
first). When that bound exceeds the free space, the backup is refused with the figures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from autonomous.core.errors import Conflict
from autonomous.backup.manifest import Entry, Manifest

__all__ = ["check_fits", "upper_bound_bytes"]

_MIB = 1024 * 1024


def upper_bound_bytes(found: list[tuple[Entry, Path]], previous: Manifest | None) -> int:
    prev = {e.path: e for e in previous.entries} if previous else {}
    total = 0
    for e, _ in found:
        if e.type != "file":
            continue
        old = prev.get(e.path)
        if e.sqlite:
            total += 2 * e.size
        elif old is None or (old.size, old.mtime_ns, old.ctime_ns, old.ino) != (
                e.size, e.mtime_ns, e.ctime_ns, e.ino):
            total += e.size
    return total


def check_fits(plan: str, found: list[tuple[Entry, Path]], previous: Manifest | None,
               repo: Path) -> int:
    """The upper bound in bytes; raises :class:`Conflict` when it exceeds the free space."""
    need = upper_bound_bytes(found, previous)
    free = shutil.disk_usage(repo).free
    if need > free:
        raise Conflict(f"backup of plan {plan!r} refused: it may add up to {need / _MIB:.1f} MiB "
                      f"(files changed since {previous.id if previous else 'no backup yet'}) "
                      f"and the repository's disk ({repo}) has {free / _MIB:.1f} MiB free; "
                      "free space (retention runs now under disk pressure) or move the "
                      "repository")
    return need
