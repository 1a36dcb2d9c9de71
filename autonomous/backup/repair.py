"""``verify --repair``: rewrite a backup's damaged chunks from the live data.

For every file that uses a damaged chunk, the live file it was backed up from is cut into
chunks again; a piece whose SHA-256 is a damaged chunk's name is exactly that chunk's content,
and ``ChunkStore.put`` rewrites the damaged copy with it. Chunks whose content no longer
exists live (the file changed, a SQLite snapshot) stay damaged and are named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autonomous.backup.chunks import ChunkStore
from autonomous.backup.manifest import Manifest

__all__ = ["live_path", "repair_chunks"]


def live_path(manifest: Manifest, inside: str) -> Path | None:
    """The live file a backup entry was read from, or None when its source is unknown."""
    label, _, rest = inside.partition("/")
    src = manifest.sources.get(label)
    if src is None:
        return None
    return Path(src) / rest if rest else Path(src)


def repair_chunks(manifest: Manifest, chunks: ChunkStore, damaged: dict[str, Any]
                  ) -> dict[str, Any]:
    """Rewrite what can be rewritten; returns ``{"repaired": [...], "unrepairable": {...}}``."""
    chunks.begin_pass()
    wanted = set(damaged)
    files = sorted({f for v in damaged.values() for f in v["files"]})
    for inside in files:
        p = live_path(manifest, inside)
        if p is None or not p.is_file() or p.is_symlink():
            continue
        with open(p, "rb") as f:
            for piece in chunks.cut(f):
                digest, _, _ = chunks.put(piece)
                wanted.discard(digest)
                if not wanted:
                    break
        if not wanted:
            break
    repaired = sorted(chunks.rewritten & set(damaged))
    left = {d: v for d, v in damaged.items() if d not in chunks.rewritten}
    for v in left.values():
        v["why"] = ("the live files no longer hold this content (changed since the backup, "
                    "or a database snapshot)")
    return {"repaired": repaired, "unrepairable": left}
