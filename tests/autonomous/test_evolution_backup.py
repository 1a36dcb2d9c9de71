"""BackupManager on the real backup engine: snapshot, list, verify, restore, cleanup."""

from __future__ import annotations

from pathlib import Path

from autonomous.core.clock import FakeClock
from autonomous.evolution.backup_manager import BackupManager
from autonomous.backup.chunks import EngineParams
from autonomous.resilience.disaster_recovery import DisasterRecovery

PARAMS = EngineParams(chunk_min_bytes=1024, chunk_avg_bytes=4096, chunk_max_bytes=16384,
                      compression_level=3, incompressible_ratio=0.95, sample_bytes=1024,
                      workers=2, fsync=False)


def test_snapshot_roundtrip_and_cleanup(tmp_path: Path) -> None:
    src = tmp_path / "svc"
    src.mkdir()
    (src / "model.bin").write_bytes(bytes(range(256)) * 200)
    (src / "state.json").write_text('{"v": 1}')
    clock = FakeClock()
    dr = DisasterRecovery(tmp_path / "repo", PARAMS, root=tmp_path, data_dir=tmp_path / "data",
                          clock=clock)
    bm = BackupManager(dr.engine)
    first = bm.create_snapshot("nexus", ["svc"])
    (src / "state.json").write_text('{"v": 2}')  # the update touched its data
    clock.advance(10)
    second = bm.create_snapshot("nexus", ["svc"])
    assert [s["id"] for s in bm.list_snapshots("nexus")] == [second["id"], first["id"]]
    assert bm.list_snapshots("robot") == []
    assert bm.verify_snapshot(first["id"])["ok"]
    out = tmp_path / "restored"
    bm.restore_snapshot(first["id"], out)
    restored = next(out.rglob("state.json"))
    assert restored.read_text() == '{"v": 1}'
    assert next(out.rglob("model.bin")).read_bytes() == (src / "model.bin").read_bytes()
    bm.cleanup_old_snapshots("nexus", keep_last=1)
    assert [s["id"] for s in bm.list_snapshots("nexus")] == [second["id"]]
