"""The backup engine: byte-identical restore, dedup and incremental reuse, damage named by
verify and refused by restore, crafted escaping backups refused, SQLite copied consistently
while written, retention and pruning, DR drill pass / fail, and the offline CLI."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from autonomous.cli.main import dispatch
from autonomous.core.clock import FakeClock
from autonomous.backup.chunks import EngineParams
from autonomous.backup.manifest import Entry, Manifest, load_manifest, save_manifest
from autonomous.backup.restore import RestoreRefused, UnsafeBackup
from autonomous.backup.retention import select_kept
from autonomous.resilience.disaster_recovery import DisasterRecovery
from autonomous.store import Store
from autonomous.testing import copy_default_tree, free_port

PARAMS = EngineParams(chunk_min_bytes=1024, chunk_avg_bytes=4096, chunk_max_bytes=16384,
                      compression_level=3, incompressible_ratio=0.95, sample_bytes=1024,
                      workers=2, fsync=False)
DRILL = {"command": ["{python}", "-m", "autonomous.resilience.drill_service", "--root",
                     "{restore_dir}", "--port", "{port}"], "health_path": "/health",
         "timeout_seconds": 20}


def make_tree(root: Path) -> Path:
    src = root / "src"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "random.bin").write_bytes(os.urandom(200_000))
    (src / "copy.bin").write_bytes((src / "random.bin").read_bytes())
    (src / "log.txt").write_text("".join(f"line {i} service nexus ok\n" for i in range(5000)))
    (src / "empty").write_bytes(b"")
    (src / "deep" / "er" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "deep" / "er" / "run.sh", 0o750)
    os.symlink("../log.txt", src / "deep" / "link-to-log")
    os.utime(src / "log.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return src


@pytest.fixture()
def env(tmp_path):
    src = make_tree(tmp_path)
    store = Store(tmp_path / "data" / "atlas.db").open()
    store.kv_set("hello", {"n": 1})
    dr = DisasterRecovery(tmp_path / "repo", PARAMS, root=tmp_path, data_dir=tmp_path / "data",
                          store=store, clock=FakeClock())
    yield tmp_path, src, dr
    store.close()


SPEC = {"paths": ["src", "{data_dir}/atlas.db"], "exclude": []}


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777)
        else:
            out[rel] = ("file", p.read_bytes(), st.st_mode & 0o7777, st.st_mtime_ns)
    return out


def test_restore_is_byte_identical_with_modes_times_and_links(env):
    tmp, src, dr = env
    b = dr.create_full_backup("p", SPEC)
    out = dr.restore_from_disaster(b["id"], tmp / "out")
    assert snapshot(tmp / "out" / "src") == snapshot(src)
    assert out["files"] == 6 and out["links"] == 1
    restored = sqlite3.connect(tmp / "out" / "atlas.db")
    assert restored.execute("SELECT value FROM kv WHERE key='hello'").fetchone() == ('{"n": 1}',)
    restored.close()


def test_dedup_full_and_incremental(env):
    _tmp, src, dr = env
    full = dr.create_full_backup("p", SPEC)["stats"]
    # copy.bin duplicates random.bin: its chunks are stored once
    assert full["new_bytes"] < full["bytes"] - 190_000
    again = dr.create_full_backup("p", SPEC)["stats"]
    # only the operator DB (it records runs) changes: nothing new comes from src/
    src_bytes = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()
                    and not p.is_symlink())
    assert 0 < again["new_bytes"] <= again["bytes"] - src_bytes
    assert again["reused_files"] == 0  # a full backup reads everything again
    with open(src / "log.txt", "a") as f:
        f.write("one more line\n")
    inc = dr.create_incremental_backup("p", SPEC)
    assert inc["kind"] == "incremental"
    assert inc["stats"]["reused_files"] == 4  # all but log.txt and the SQLite copy
    before = next(e for e in dr.get(inc["parent"]).entries if e.path == "src/log.txt").chunks
    after = next(e for e in dr.get(inc["id"]).entries if e.path == "src/log.txt").chunks
    assert len(set(after) - set(before)) <= 2 < len(after)  # content-defined: tail only
    assert dr.verify_backup_integrity(inc["id"])["ok"]


def test_incompressible_chunks_are_stored_raw(env):
    tmp, _, dr = env
    dr.create_full_backup("p", SPEC)
    heads = {f.read_bytes()[:1] for f in (tmp / "repo" / "chunks").glob("*/*")}
    assert heads == {b"R", b"Z"}


def test_corrupt_chunk_is_named_by_verify_and_restore_refuses(env):
    tmp, _src, dr = env
    b = dr.create_full_backup("p", SPEC)
    m = dr.get(b["id"])
    victim = next(e for e in m.entries if e.path == "src/log.txt").chunks[0]
    path = tmp / "repo" / "chunks" / victim[:2] / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    rep = dr.verify_backup_integrity(b["id"])
    assert not rep["ok"] and list(rep["damaged_chunks"]) == [victim]
    assert rep["damaged_files"] == ["src/log.txt"]
    with pytest.raises(RestoreRefused, match=victim):
        dr.restore_from_disaster(b["id"], tmp / "out")
    assert not (tmp / "out").exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".out.restoring")]
    drill = dr.test_disaster_recovery(b["id"], DRILL)
    assert not drill["ok"] and drill["steps"][-1]["step"] == "verify"
    assert victim in drill["steps"][-1]["detail"]["error"]


def test_missing_chunk_and_damaged_manifest_are_named(env):
    tmp, _, dr = env
    b = dr.create_full_backup("p", SPEC)
    victim = dr.get(b["id"]).entries[-1].chunks[0]
    (tmp / "repo" / "chunks" / victim[:2] / victim).unlink()
    assert dr.verify_backup_integrity(b["id"])["damaged_chunks"][victim]["problem"] == "missing"
    mf = tmp / "repo" / "snapshots" / f"{b['id']}.json"
    mf.write_bytes(mf.read_bytes().replace(b'"plan":"p"', b'"plan":"q"'))
    rep = dr.verify_backup_integrity(b["id"])
    assert not rep["ok"] and "does not match its SHA-256" in rep["manifest"]


def crafted(dr: DisasterRecovery, entries: list[Entry]) -> str:
    digest, _, _ = dr.chunks.put(b"pwned")
    import hashlib

    for e in entries:
        if e.type == "file":
            e.chunks, e.sha256, e.size = [digest], hashlib.sha256(b"pwned").hexdigest(), 5
    m = Manifest(id="20200101T000000Z-bad000", plan="p", kind="full", parent=None,
                 created_at=0.0, sources={}, entries=entries)
    save_manifest(dr.repo, m, fsync=False)
    return m.id


@pytest.mark.parametrize("entries, why", [
    ([Entry("../escape.txt", "file", 0o644, 0)], "'..'"),
    ([Entry("a/../../escape.txt", "file", 0o644, 0)], "'..'"),
    ([Entry("/tmp/abs.txt", "file", 0o644, 0)], "absolute path"),
    ([Entry("a", "symlink", 0o777, 0, target="/etc")], "points outside"),
    ([Entry("a/b", "symlink", 0o777, 0, target="../../outside")], "points outside"),
    ([Entry("d", "symlink", 0o777, 0, target="."), Entry("d/x", "file", 0o644, 0)],
     "goes through symlink 'd'"),
    ([Entry("x", "file", 0o644, 0), Entry("x", "file", 0o644, 0)], "listed twice"),
], ids=["dotdot", "nested-dotdot", "absolute", "link-absolute", "link-climbs",
        "through-link", "duplicate"])
def test_crafted_backups_that_escape_are_refused(env, entries, why):
    tmp, _, dr = env
    backup_id = crafted(dr, entries)
    rep = dr.verify_backup_integrity(backup_id)
    assert not rep["ok"] and why in " ".join(rep["unsafe_entries"])
    with pytest.raises(UnsafeBackup, match=why):
        dr.restore_from_disaster(backup_id, tmp / "deep" / "out")
    assert not (tmp / "escape.txt").exists() and not (tmp / "deep").exists()


def test_inside_links_are_restored(env):
    tmp, _, dr = env
    backup_id = crafted(dr, [Entry("a", "dir", 0o755, 0), Entry("a/f", "file", 0o644, 0),
                             Entry("a/l", "symlink", 0o777, 0, target="f"),
                             Entry("up", "symlink", 0o777, 0, target="a/../a/f")])
    dr.restore_from_disaster(backup_id, tmp / "out")
    assert (tmp / "out" / "a" / "l").read_bytes() == b"pwned"
    assert (tmp / "out" / "up").read_bytes() == b"pwned"


def test_sqlite_written_during_backup_restores_consistent(env):
    tmp, src, dr = env
    db = src / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT, check_sum INTEGER)")
    conn.commit()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        w = sqlite3.connect(db, timeout=30)
        i = 0
        while not stop.is_set():
            with w:
                w.executemany("INSERT INTO t(payload, check_sum) VALUES (?, ?)",
                              [(f"row-{i}-{k}" * 20, i) for k in range(50)])
            i += 1
            written[0] = i
        w.close()

    th = threading.Thread(target=writer)
    th.start()
    try:
        while written[0] < 20:
            time.sleep(0.01)
        assert (src / "app.db-wal").exists()  # live WAL next to the database
        backups = [dr.create_full_backup("p", SPEC) for _ in range(3)]
    finally:
        stop.set()
        th.join()
        conn.close()
    for b in backups:
        m = dr.get(b["id"])
        paths = {e.path for e in m.entries}
        assert "src/app.db" in paths and "src/app.db-wal" not in paths
        assert next(e for e in m.entries if e.path == "src/app.db").sqlite
        out = tmp / f"out-{b['id']}"
        dr.restore_from_disaster(b["id"], out)
        r = sqlite3.connect(out / "src" / "app.db")
        assert r.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n, batches = r.execute("SELECT COUNT(*), COUNT(DISTINCT check_sum) FROM t").fetchone()
        assert n == batches * 50 and n > 0  # whole transactions only
        r.close()


def test_retention_keeps_last_daily_weekly():
    day = 86400.0
    ms = [Manifest(id=f"b{i:02d}", plan="p", kind="full", parent=None,
                   created_at=1_700_000_000 + i * day / 2, sources={}, entries=[], seq=i)
          for i in range(30)]  # two a day for 15 days
    kept = select_kept(ms, {"keep_last": 3, "keep_daily": 4, "keep_weekly": 2})
    assert {"b29", "b28", "b27"} <= set(kept)
    daily = sorted(k for k, why in kept.items() if any(w.startswith("daily") for w in why))
    assert len(daily) == 4
    weekly = [k for k, why in kept.items() if any(w.startswith("weekly") for w in why)]
    assert len(weekly) == 2 and "b29" in weekly
    assert select_kept(ms, {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0}) == \
        {"b29": ["last"]}


def test_prune_forgets_backups_and_deletes_only_unreferenced_chunks(env):
    tmp, src, dr = env
    first = dr.create_full_backup("p", SPEC)
    (src / "random.bin").write_bytes(os.urandom(100_000))
    (src / "copy.bin").unlink()
    dr.create_full_backup("p", SPEC)
    out = dr.prune("p", {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0})
    assert out["forgotten"] == [first["id"]] and out["chunks_removed"] >= 1
    [left] = dr.list_backups("p")
    assert dr.verify_backup_integrity(left["id"])["ok"]
    dr.restore_from_disaster(left["id"], tmp / "out")
    assert (tmp / "out" / "src" / "random.bin").read_bytes() == \
        (src / "random.bin").read_bytes()


def test_drill_passes_on_a_good_backup_and_fails_when_the_service_is_unhealthy(env):
    _tmp, _src, dr = env
    b = dr.create_full_backup("p", SPEC)
    rep = dr.test_disaster_recovery(b["id"], DRILL)
    assert rep["ok"], rep
    service = rep["steps"][-1]["detail"]
    assert service["status_code"] == 200 and service["body"]["integrity"] == "ok"
    # a backup without the operator's state cannot start the drill service healthy
    other = dr.create_full_backup("q", {"paths": ["src"], "exclude": []})
    bad = dr.test_disaster_recovery(other["id"], {**DRILL, "timeout_seconds": 2})
    assert not bad["ok"] and bad["steps"][-1]["step"] == "service"
    assert "neither atlas.db nor desired_state" in bad["steps"][-1]["detail"]["error"]
    rows = dr.store.query("SELECT ok FROM drill_runs ORDER BY id")
    assert [r["ok"] for r in rows] == [1, 0]


def test_cli_backup_verify_restore_offline(tmp_path, capsys):
    root = copy_default_tree(tmp_path / "root")
    base = root / "policies" / "base.yaml"  # restores allowed without approval in this tree
    base.write_text(base.read_text().replace("restore: require_approval", "restore: enforce"))
    data = root / ".atlas-data"
    Store(data / "atlas.db").open().close()
    args = ["--root", str(root)]
    offline = ["--url", f"http://127.0.0.1:{free_port()}"]  # no operator answers there
    assert dispatch(["backup", *args]) == 0
    assert dispatch(["backup", *args, "--incremental"]) == 0
    out = capsys.readouterr().out
    assert "full backup" in out and "incremental backup" in out
    repo = data / "backups"
    ids = sorted(p.stem for p in (repo / "snapshots").glob("*.json"))
    assert dispatch(["verify", *args, ids[0]]) == 0
    assert dispatch(["restore", *args, *offline, ids[0], "restored"]) == 0  # <data>/restores
    assert (data / "restores" / "restored" / "config" / "autonomous.yaml").read_bytes() == \
        (root / "config" / "autonomous.yaml").read_bytes()
    # the data dir is gone: restore straight from the repository
    # a chunk this backup uses (the database changes between the two backups, so not every
    # chunk in the repository belongs to both)
    used = next(iter(load_manifest(repo, ids[0]).chunk_refs()))
    chunk = next((repo / "chunks").glob(f"*/{used}"))
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))  # always a different last byte
    assert dispatch(["verify", "--root", str(tmp_path), "--repo", str(repo), ids[0]]) == 2
    err = capsys.readouterr().err
    assert chunk.name in err and "DAMAGED" in err
    assert dispatch(["restore", *args, *offline, "--repo", str(repo), ids[0], "again"]) == 1
    assert "restore refused" in capsys.readouterr().err


def test_restore_never_sets_setuid_or_setgid(env):
    tmp, src, dr = env
    run = src / "deep" / "er" / "run.sh"
    os.chmod(run, 0o6755)
    os.chmod(src / "deep", 0o2755)
    assert os.stat(run).st_mode & 0o6000 == 0o6000  # the manifest will carry the bits
    b = dr.create_full_backup("p", SPEC)
    dr.restore_from_disaster(b["id"], tmp / "out")
    restored = tmp / "out" / "src" / "deep"
    assert os.stat(restored / "er" / "run.sh").st_mode & 0o7777 == 0o755
    assert os.stat(restored).st_mode & 0o7777 == 0o755


def _flip(tmp: Path, digest: str) -> None:
    path = tmp / "repo" / "chunks" / digest[:2] / digest
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_new_backups_rewrite_a_corrupted_chunk_they_reference(env):
    tmp, _src, dr = env
    first = dr.create_full_backup("p", SPEC)
    victim = next(e for e in dr.get(first["id"]).entries if e.path == "src/log.txt").chunks[0]
    _flip(tmp, victim)
    assert not dr.verify_backup_integrity(first["id"])["ok"]
    inc = dr.create_incremental_backup("p", SPEC)
    assert dr.verify_backup_integrity(inc["id"])["ok"]
    assert dr.verify_backup_integrity(first["id"])["ok"]  # same chunk, rewritten once
    _flip(tmp, victim)
    full = dr.create_full_backup("p", SPEC)
    assert dr.verify_backup_integrity(full["id"])["ok"]


def test_repair_rewrites_damaged_chunks_from_live_data(env):
    tmp, src, dr = env
    b = dr.create_full_backup("p", SPEC)
    m = dr.get(b["id"])
    log_chunk = next(e for e in m.entries if e.path == "src/log.txt").chunks[0]
    bin_chunk = next(e for e in m.entries if e.path == "src/random.bin").chunks[-1]
    _flip(tmp, log_chunk)
    _flip(tmp, bin_chunk)
    for name in ("random.bin", "copy.bin"):  # that content is gone live
        (src / name).write_bytes(os.urandom(200_000))
    out = dr.repair(b["id"])
    assert out["repaired"] == [log_chunk]
    assert list(out["unrepairable"]) == [bin_chunk] and not out["ok"]
    assert out["damaged_files"] == ["src/copy.bin", "src/random.bin"]


def test_cli_verify_repair_rewrites_from_live_data(tmp_path, capsys):
    root = copy_default_tree(tmp_path / "root")
    base = root / "policies" / "base.yaml"  # restores allowed without approval in this tree
    base.write_text(base.read_text().replace("restore: require_approval", "restore: enforce"))
    data = root / ".atlas-data"
    Store(data / "atlas.db").open().close()
    args = ["--root", str(root)]
    assert dispatch(["backup", *args]) == 0
    repo = data / "backups"
    bid = next(p.stem for p in (repo / "snapshots").glob("*.json"))
    m = load_manifest(repo, bid)
    used = next(e for e in m.entries if e.path == "config/autonomous.yaml").chunks[0]
    chunk = next((repo / "chunks").glob(f"*/{used}"))
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    assert dispatch(["verify", *args, bid]) == 2
    capsys.readouterr()
    assert dispatch(["verify", *args, "--repair", bid]) == 0
    assert f"chunk {used}: rewritten from live data" in capsys.readouterr().out
    assert dispatch(["verify", *args, bid]) == 0


_DRILL_HOST = """
import sys
from pathlib import Path
from autonomous.core.clock import SystemClock
from autonomous.backup.chunks import EngineParams
from autonomous.resilience.disaster_recovery import DisasterRecovery
tmp = Path(sys.argv[1])
(tmp / "src").mkdir()
(tmp / "src" / "f.txt").write_text("x")
params = EngineParams(chunk_min_bytes=1024, chunk_avg_bytes=4096, chunk_max_bytes=16384,
                      compression_level=3, incompressible_ratio=0.95, sample_bytes=1024,
                      workers=1, fsync=False)
dr = DisasterRecovery(tmp / "repo", params, root=tmp, data_dir=tmp / "data", store=None,
                      clock=SystemClock())
b = dr.create_full_backup("p", {"paths": ["src"], "exclude": []})
# a drill service that never answers its health path: the drill waits until killed
dr.test_disaster_recovery(b["id"], {"command": ["{python}", "-c",
    "import time\\nwhile True: time.sleep(1)"], "health_path": "/health",
    "timeout_seconds": 600})
"""


def test_drill_service_dies_with_a_killed_operator_and_its_folder_is_reaped(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from autonomous.resilience.drill_reap import reap_drills

    drills = tmp_path / "tmpdir"
    drills.mkdir()
    env = {**os.environ, "TMPDIR": str(drills)}
    host = subprocess.Popen([sys.executable, "-c", _DRILL_HOST, str(tmp_path)], env=env)
    try:
        deadline = time.monotonic() + 60
        pid_files: list[Path] = []
        while not pid_files and time.monotonic() < deadline and host.poll() is None:
            pid_files = list(drills.glob("atlas-drill-*/service.pid"))
            time.sleep(0.05)
        assert pid_files, "the drill service never started"
        child = int(pid_files[0].read_text())
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        gone = time.monotonic() + 10
        while time.monotonic() < gone:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            try:  # a zombie of init is dead too
                if open(f"/proc/{child}/stat").read().split(") ")[1][0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the drill service outlived the killed operator")
        assert list(drills.glob("atlas-drill-*")), "the killed operator left its folder"
        removed = reap_drills(drills)
        assert len(removed) == 1 and not list(drills.glob("atlas-drill-*"))
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)
