"""Generations of the desired state.

``reload()`` reads the tree under ``root``; when it is valid and its content hash differs from
the generation in force it becomes a new generation (persisted with its hash, the git commit
when the root is a checkout, the resources (env values hidden), the effective policies and the
config). An invalid
tree is rejected whole: the generation in force keeps running and ``error`` holds the problems
until a valid edit clears them. ``watch()`` runs ``reload`` on every file change (watchfiles):
the tree is read, parsed and validated and its git commit looked up (two ``git`` processes) in
a worker thread, so a reload holds the serving loop only to install the generation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import awatch

from autonomous.core.clock import Clock, SystemClock, iso
from autonomous.core.errors import Problem
from autonomous.core.events import EventBus
from autonomous.resources.loader import TREE_DIRS, LoadResult, Tree, load_tree
from autonomous.resources.yaml_lines import ParseLimits
from autonomous.store import Store

__all__ = ["DesiredStateManager", "Generation", "git_commit", "git_dirty", "git_state"]

log = logging.getLogger("atlas.desired")


@dataclass
class Generation:
    number: int
    hash: str
    commit: str | None
    created_at: float
    tree: Tree
    dirty: bool | None = None  # the tree differs from ``commit`` (None: not a git checkout)

    @property
    def services(self) -> dict[str, Any]:
        return self.tree.services

    def policy(self, mode: str) -> dict[str, Any]:
        return self.tree.policies[mode]


@dataclass
class ReloadError:
    problems: list[Problem]
    hash: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "at": iso(self.at),
                "problems": [p.as_dict() for p in self.problems],
                "text": "\n".join(str(p) for p in self.problems)}


def git_commit(root: Path) -> str | None:
    """HEAD of the git checkout holding ``root``, or None when it is not one."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def git_dirty(root: Path) -> bool | None:
    """Whether the tree folders under ``root`` have uncommitted changes (None: no git)."""
    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                              *TREE_DIRS], capture_output=True, text=True, timeout=5,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def git_state(root: Path) -> tuple[str | None, bool | None]:
    """(HEAD, dirty) of the checkout holding ``root``; (None, None) when it is not one."""
    commit = git_commit(root)
    return commit, git_dirty(root) if commit else None


def _env_hidden(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as recorded in a generation row: env values hidden (the row is a record; the
    revision a rollback runs again is kept by the services' revisions)."""
    env = spec.get("env")
    if isinstance(env, dict) and env:
        return {**spec, "env": {k: "[REDACTED]" for k in env}}
    return spec


@dataclass
class DesiredStateManager:
    root: Path
    store: Store
    bus: EventBus
    clock: Clock = field(default_factory=SystemClock)
    current: Generation | None = None
    error: ReloadError | None = None
    reloads: int = 0

    def reload(self, preloaded: LoadResult | None = None,
               git: tuple[str | None, bool | None] | None = None) -> Generation | None:
        """Load the tree (or take ``preloaded``, a result just read from the same root, and
        ``git``, its ``git_state`` looked up with it); install it as a new generation if
        valid and changed. Returns it."""
        self.reloads += 1
        result = preloaded if preloaded is not None else load_tree(self.root, limits=self.limits())
        if result.tree is None:
            self.error = ReloadError(result.problems, result.hash, self.clock.now())
            log.warning("desired state rejected: %d problem(s); generation %s keeps running",
                        len(result.problems), self.current.number if self.current else None,
                        extra={"problems": [str(p) for p in result.problems]})
            self.bus.publish("desired.rejected", problems=[str(p) for p in result.problems])
            return None
        self.error = None
        if self.current is not None and self.current.hash == result.hash:
            return None
        gen = self._persist(result.tree, git)
        self.current = gen
        log.info("desired state generation %d in force (hash %s, commit %s)", gen.number,
                 gen.hash[:12], gen.commit)
        self.bus.publish("desired.generation", generation=gen.number, hash=gen.hash)
        return gen

    def _persist(self, tree: Tree, git: tuple[str | None, bool | None] | None) -> Generation:
        last = self.store.query_one("SELECT generation, hash, commit_sha, created_at FROM "
                                    "generations ORDER BY generation DESC LIMIT 1")
        commit, dirty = git if git is not None else git_state(self.root)
        if last is not None and last["hash"] == tree.hash:
            return Generation(last["generation"], tree.hash, last["commit_sha"] or commit,
                              last["created_at"], tree, dirty)
        number = (last["generation"] if last else 0) + 1
        now = self.clock.now()
        resources = [{"kind": r.kind, "name": r.name, "file": r.file,
                      "spec": _env_hidden(r.spec_dict())} for r in tree.resources.values()]
        self.store.execute(
            "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?)",
            (number, tree.hash, commit, now, json.dumps(resources), json.dumps(tree.policies),
             tree.config.model_dump_json()))
        return Generation(number, tree.hash, commit, now, tree, dirty)

    def limits(self) -> ParseLimits:
        """Parse limits from the generation in force (config ``parse_limits``)."""
        if self.current is None:
            return ParseLimits()
        return ParseLimits(**self.current.tree.config.parse_limits.model_dump())

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT generation, hash, commit_sha, created_at FROM generations "
                                "ORDER BY generation DESC LIMIT ?", (limit,))
        return [{"generation": r["generation"], "hash": r["hash"], "commit": r["commit_sha"],
                 "created_at": iso(r["created_at"])} for r in rows]

    def info(self) -> dict[str, Any]:
        cur = self.current
        return {
            "generation": cur.number if cur else None,
            "hash": cur.hash if cur else None,
            "commit": cur.commit if cur else None,
            "dirty": cur.dirty if cur else None,
            "created_at": iso(cur.created_at) if cur else None,
            "error": self.error.as_dict() if self.error else None,
            "root": str(self.root),
        }

    def _read(self) -> tuple[LoadResult, tuple[str | None, bool | None] | None]:
        """(worker thread) The tree parsed and validated, and its ``git_state`` when it would
        become a new generation (valid, another hash)."""
        result = load_tree(self.root, limits=self.limits())
        cur = self.current
        new = result.tree is not None and (cur is None or cur.hash != result.hash)
        return result, git_state(self.root) if new else None

    async def watch(self, stop: asyncio.Event, debounce_ms: int = 50, step_ms: int = 100) -> None:
        """Reload on every change under desired_state/, policies/, config/ until ``stop``."""
        dirs = [str(self.root / d) for d in TREE_DIRS if (self.root / d).exists()]
        if not dirs:
            return
        async for _changes in awatch(*dirs, stop_event=stop, debounce=debounce_ms, step=step_ms,
                                     recursive=True, force_polling=False):
            try:
                # read in a worker thread: a big or hostile file never stalls the event loop
                self.reload(*await asyncio.to_thread(self._read))
            except Exception:  # noqa: BLE001 - a reload bug must not kill the watcher
                log.exception("reload failed")
