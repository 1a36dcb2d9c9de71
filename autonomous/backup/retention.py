"""Retention: which backups of a plan to keep (pure), and pruning unreferenced chunks.

``select_kept`` follows the usual keep-last / keep-daily / keep-weekly rules (as restic's
``forget``): the newest N backups, then the newest backup of each of the newest N distinct
days and ISO weeks (UTC). A backup is kept when any rule keeps it; the reasons are returned.
An incremental backup never depends on its parent's manifest (it lists every chunk), so
forgetting a parent never breaks a child.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autonomous.backup.chunks import ChunkStore
from autonomous.backup.manifest import (
    Manifest,
    delete_manifest,
    list_manifests,
    referenced_chunks,
)

__all__ = ["prune", "select_kept"]


def select_kept(manifests: list[Manifest], retention: dict[str, int]) -> dict[str, list[str]]:
    """Backup id → reasons it is kept. Pure: depends only on the arguments."""
    newest_first = sorted(manifests, key=lambda m: (m.created_at, m.seq, m.id),
                         reverse=True)
    kept: dict[str, list[str]] = {}
    for m in newest_first[:retention["keep_last"]]:
        kept.setdefault(m.id, []).append("last")
    for rule, key in (("keep_daily", _day), ("keep_weekly", _week)):
        seen: list[str] = []
        for m in newest_first:
            k = key(m.created_at)
            if k in seen:
                continue
            if len(seen) >= retention[rule]:
                break
            seen.append(k)
            kept.setdefault(m.id, []).append(f"{rule.removeprefix('keep_')} {k}")
    return kept


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def _week(ts: float) -> str:
    y, w, _ = datetime.fromtimestamp(ts, tz=UTC).isocalendar()
    return f"{y}-W{w:02d}"


def prune(repo: Path, chunks: ChunkStore, plan: str, retention: dict[str, int]) -> dict[str, Any]:
    """Forget the plan's backups no rule keeps, then delete chunks no backup references."""
    mine = list_manifests(repo, plan)
    kept = select_kept(mine, retention)
    forgotten = [m.id for m in mine if m.id not in kept]
    for backup_id in forgotten:
        delete_manifest(repo, backup_id)
    still = referenced_chunks(list_manifests(repo))
    freed = removed = 0
    for digest in sorted(chunks.known() - still):
        freed += chunks.delete(digest)
        removed += 1
    return {"plan": plan, "kept": kept, "forgotten": forgotten, "chunks_removed": removed,
            "bytes_freed": freed}
