"""Offline backup commands (no operator needed): ``backup``, ``backups``, ``verify``,
``restore``, ``drill`` — on a root (desired_state/, policies/, config/) and its data dir, or
straight on a repository folder (``--repo``) when the data dir itself was lost."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _console() -> Any:
    """rich is imported when a command prints, not when the parser is built."""
    from rich.console import Console

    return Console(stderr=True)


def register(sub: Any) -> None:
    for name, fn, text in (("backup", cmd_backup, "take a backup of a BackupPlan"),
                           ("backups", cmd_list, "list the backups in a repository"),
                           ("verify", cmd_verify, "re-hash every chunk of a backup"),
                           ("restore", cmd_restore, "restore a backup into an empty folder "
                            "(behind governance.actions.restore; exit 3: awaits approval)"),
                           ("drill", cmd_drill, ("DR drill: verify, restore to a temporary "
                                                 "place, start the drill service, check "
                                                 "health"))):
        p = sub.add_parser(name, help=text)
        p.add_argument("--root", default=".", help="folder holding desired_state/, policies/, "
                       "config/")
        p.add_argument("--data-dir", default=None, help="data dir (default: config data_dir)")
        p.add_argument("--plan", default="operator", help="BackupPlan name")
        p.add_argument("--repo", default=None, help="repository folder (default: the plan's)")
        if name == "backup":
            p.add_argument("--incremental", action="store_true",
                           help="reuse unchanged files of the plan's latest backup")
        if name in ("verify", "restore", "drill"):
            p.add_argument("backup_id", help="backup id (see 'backups')")
        if name == "verify":
            p.add_argument("--repair", action="store_true", help="rewrite damaged chunks from "
                           "the live data where it still hashes to the chunk name")
        if name == "restore":
            p.add_argument("target", help="new or empty folder to restore into; a relative "
                           "one lands under <data_dir>/restores/, an absolute one must lie "
                           "there or under a policy resilience.backup.restore_roots")
            p.add_argument("--url", default=None, help="operator API URL (default: from "
                           "config); the restore goes through the running operator's "
                           "governance gate, or the same policy is applied offline")
        p.set_defaults(func=fn)


class _Env:
    """What the commands work on: the plan, the repository and the DisasterRecovery."""

    def __init__(self, args: Any, *, need_store: bool) -> None:
        from autonomous.backup.chunks import EngineParams
        from autonomous.resilience.disaster_recovery import DisasterRecovery
        from autonomous.resources.loader import load_tree

        self.root = Path(args.root).absolute()
        result = load_tree(self.root, require_services=False)
        if result.tree is None and args.repo is None:
            raise SystemExit("\n".join(str(p) for p in result.problems) +
                             "\nthe tree is invalid: fix it, or name the repository with --repo")
        tree = result.tree
        data = args.data_dir or (tree.config.data_dir if tree else ".atlas-data")
        self.data_dir = (self.root / data) if not Path(data).is_absolute() else Path(data)
        self.plan = self._plan(tree, args.plan) if tree else None
        self.policies: dict[str, dict[str, Any]] | None = tree.policies if tree else None
        repo = args.repo or (self.plan or {}).get("repository")
        if repo is None:
            raise SystemExit(f"BackupPlan {args.plan!r} is not declared; name --repo")
        repo_path = Path(repo.replace("{data_dir}", str(self.data_dir)))
        self.repo = repo_path if repo_path.is_absolute() else self.root / repo_path
        pol = tree.policies["governed"]["resilience"]["backup"] if tree else None
        params = EngineParams.from_policy(pol) if pol else _reader_params()
        if args.func is not cmd_backup and not (self.repo / "config.json").exists():
            raise SystemExit(f"{self.repo} is not a backup repository (no config.json)")
        self.store = self._store() if need_store else None
        self.dr = DisasterRecovery(self.repo, params, root=self.root, data_dir=self.data_dir,
                                   store=self.store,
                                   drill_port_start=pol["drill_port_start"] if pol else 20000)

    @staticmethod
    def _plan(tree: Any, name: str) -> dict[str, Any] | None:
        found = [r for r in tree.of_kind("BackupPlan") if r.name == name]
        return found[0].spec_dict() if found else None

    def _store(self) -> Any:
        from autonomous.store import Store

        db = self.data_dir / "atlas.db"
        return Store(db).open() if db.exists() else None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _reader_params() -> Any:
    """Parameters for reading a repository without a tree: chunking comes from the repository
    itself; compression settings do not matter to a reader."""
    from autonomous.backup.chunks import EngineParams

    return EngineParams(chunk_min_bytes=64, chunk_avg_bytes=256, chunk_max_bytes=1024,
                        compression_level=3, incompressible_ratio=1.0, sample_bytes=1024,
                        workers=os.cpu_count() or 1, fsync=True)


@contextmanager
def _bar(what: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=_console(),
                  transient=False) as prog:
        task = prog.add_task(what, total=None)
        yield lambda done, total: prog.update(task, completed=done, total=total)


def _run(args: Any, fn: Callable[[_Env], int], *, need_store: bool = False) -> int:
    env = _Env(args, need_store=need_store)
    try:
        return fn(env)
    except Exception as exc:  # noqa: BLE001 - a CLI says what went wrong, no traceback
        _console().print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        return 1
    finally:
        env.close()


def cmd_backup(args: Any) -> int:
    def go(env: _Env) -> int:
        if env.plan is None:
            raise LookupError(f"BackupPlan {args.plan!r} is not declared under {env.root}")
        fn = env.dr.create_incremental_backup if args.incremental else env.dr.create_full_backup
        with _bar("backup") as bar:
            out = fn(args.plan, env.plan, progress=bar)
        s = out["stats"]
        print(f"{out['kind']} backup {out['id']}: {s['files']} files, {s['bytes']} bytes, "
              f"{s['new_chunks']} new chunks ({s['stored_bytes']} bytes stored), "
              f"{s['reused_files']} files unchanged, {s['seconds']} s")
        for w in s["warnings"]:
            print(f"warning: {w}")
        return 0
    return _run(args, go, need_store=True)


def cmd_list(args: Any) -> int:
    def go(env: _Env) -> int:
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "plan", "kind", "files", "bytes", "new chunks")
        for b in env.dr.list_backups():
            table.add_row(b["id"], b["plan"], b["kind"], str(b["files"]), str(b["bytes"]),
                          str(b["stats"].get("new_chunks", "")))
        Console().print(table)
        return 0
    return _run(args, go)


def cmd_verify(args: Any) -> int:
    def go(env: _Env) -> int:
        from rich.progress import Progress

        with Progress(console=_console()) as prog:
            task = prog.add_task("verify chunks", total=None)
            rep = env.dr.verify_backup_integrity(
                args.backup_id, progress=lambda d, t: prog.update(task, completed=d, total=t))
        if not rep["ok"] and getattr(args, "repair", False):
            rep = env.dr.repair(args.backup_id)
            for digest in rep["repaired"]:
                print(f"  chunk {digest}: rewritten from live data")
        if rep["ok"]:
            print(f"backup {args.backup_id}: OK ({rep['chunks']} chunks re-hashed)")
            return 0
        print(f"backup {args.backup_id}: DAMAGED", file=sys.stderr)
        for digest, d in rep["damaged_chunks"].items():
            print(f"  chunk {digest}: {d['problem']} — files {', '.join(d['files'])}",
                  file=sys.stderr)
        for u in rep["unsafe_entries"]:
            print(f"  unsafe entry {u}", file=sys.stderr)
        if rep.get("manifest"):
            print(f"  manifest: {rep['manifest']}", file=sys.stderr)
        return 2
    return _run(args, go)


AWAITS_APPROVAL = 3  # exit code of a restore recorded but waiting for a human


def _print_restored(out: dict[str, Any]) -> None:
    print(f"restored {out['files']} files ({out['bytes']} bytes), {out['links']} links, "
          f"{out['dirs']} folders into {out['target']} in {out['seconds']} s")


def _restore_via_operator(args: Any) -> int | None:
    """Ask the running operator to restore (its gate decides); None when none answers."""
    import httpx

    from autonomous.cli.client import ApiClient

    client = ApiClient(args)
    try:
        r = client.request("POST", f"/api/resilience/backups/{args.backup_id}/restore",
                           json={"target": args.target})
    except httpx.ConnectError:
        return None
    except httpx.HTTPError as exc:
        print(f"error: the operator at {client.base} did not answer the restore: {exc}",
              file=sys.stderr)
        return 1
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text}
    if r.status_code == 200:
        _print_restored(body)
        return 0
    if r.status_code == 202:
        print(f"restore {body.get('state')}: {body.get('detail')}", file=sys.stderr)
        if body.get("approve"):
            print(f"approve with: {body['approve']}", file=sys.stderr)
        return AWAITS_APPROVAL if body.get("state") == "awaiting_approval" else 1
    print(f"error: {r.status_code}: {body.get('detail', r.text)}", file=sys.stderr)
    return 1


def cmd_restore(args: Any) -> int:
    via = _restore_via_operator(args)
    if via is not None:
        return via

    def go(env: _Env) -> int:
        from autonomous.resilience.restore_gate import OfflineRestoreGate

        verdict = OfflineRestoreGate(env.root, env.data_dir, env.policies,
                                     env.store).check(args.backup_id, args.target)
        if not verdict.allowed:
            print(verdict.message, file=sys.stderr)
            return 0 if verdict.gate == "dry_run" else 1  # refused: nothing recorded
        assert verdict.target is not None
        with _bar("restore") as bar:
            out = env.dr.restore_from_disaster(args.backup_id, verdict.target, progress=bar)
        _print_restored(out)
        return 0
    return _run(args, go, need_store=True)


def cmd_drill(args: Any) -> int:
    def go(env: _Env) -> int:
        rep = env.dr.test_disaster_recovery(args.backup_id, (env.plan or {}).get("drill"))
        for s in rep["steps"]:
            mark = "ok " if s["ok"] else "FAIL"
            print(f"{mark} {s['step']:<18} {s['seconds']:>7.3f} s  "
                  f"{s['detail'].get('error', '') if not s['ok'] else ''}")
        print("drill passed" if rep["ok"] else "drill FAILED")
        return 0 if rep["ok"] else 2
    return _run(args, go, need_store=True)
