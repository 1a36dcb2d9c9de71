"""Sealed (encrypted and authenticated) backup repositories for off-host copies: nothing in
the repository is plaintext, restores are byte-identical, every tampering is named by verify,
a wrong or missing key is refused with what to do, and the key file is the operator's only."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from autonomous.core.clock import FakeClock
from autonomous.backup import crypto as backup_crypto
from autonomous.backup.chunks import open_repository
from autonomous.backup.crypto import plan_key_file
from autonomous.resilience.disaster_recovery import DisasterRecovery
from tests.autonomous.test_resilience_backup import PARAMS, make_tree

SECRET = "calibration-secret-7f3a9c"
SPEC = {"paths": ["src"], "exclude": []}


@pytest.fixture(autouse=True)
def _fresh_registry():
    backup_crypto._registry.clear()  # each test opens its repositories as a new process would
    yield
    backup_crypto._registry.clear()


@pytest.fixture()
def sealed(tmp_path):
    src = make_tree(tmp_path)
    (src / "calibration.txt").write_text(f"{SECRET}\n" * 200)
    key = tmp_path / "data" / "keys" / "backup-p.key"
    dr = DisasterRecovery(tmp_path / "offsite", PARAMS, root=tmp_path,
                          data_dir=tmp_path / "data", clock=FakeClock(), key_file=key)
    return tmp_path, src, key, dr


def _reopen(tmp_path: Path, key: Path | None) -> DisasterRecovery:
    backup_crypto._registry.clear()
    return DisasterRecovery(tmp_path / "offsite", PARAMS, root=tmp_path,
                            data_dir=tmp_path / "data", clock=FakeClock(), key_file=key)


def test_sealed_repository_holds_no_plaintext_and_restores_byte_identical(sealed):
    tmp, src, key, dr = sealed
    b = dr.create_full_backup("p", SPEC)
    files = [p for p in (tmp / "offsite").rglob("*") if p.is_file()]
    assert len(files) > 5
    plain_sha = hashlib.sha256((src / "random.bin").read_bytes()).hexdigest()
    for f in files:
        body = f.read_bytes()
        assert SECRET.encode() not in body, f
        if f.name != "config.json":
            assert b"calibration.txt" not in body and b"log.txt" not in body, f
        assert plain_sha not in f.name  # chunk names are keyed, not bare SHA-256
    cfg = json.loads((tmp / "offsite" / "config.json").read_text())
    assert cfg["encryption"]["algorithm"] == "AES-256-GCM"
    assert key.read_text().strip() not in json.dumps(cfg)  # the id, never the key
    out = _reopen(tmp, key).restore_from_disaster(b["id"], tmp / "out")
    assert out["files"] >= 6
    cmp = filecmp.dircmp(src, tmp / "out" / "src")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert (tmp / "out" / "src" / "random.bin").read_bytes() == (src / "random.bin").read_bytes()


def test_key_file_is_private(sealed):
    _, _, key, _ = sealed
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    os.chmod(key, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        backup_crypto.load_key(key)


def test_tampering_is_named_by_verify(sealed):
    tmp, _, _, dr = sealed
    b = dr.create_full_backup("p", SPEC)
    chunks = sorted(p for p in (tmp / "offsite" / "chunks").rglob("*") if p.is_file())
    victim = chunks[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    # a chunk swapped in under another name fails too (its name is the associated data)
    a, c = chunks[1], chunks[2]
    a_body, c_body = a.read_bytes(), c.read_bytes()
    a.write_bytes(c_body)
    c.write_bytes(a_body)
    report = dr.verify_backup_integrity(b["id"])
    assert report["ok"] is False
    damaged = report["damaged_chunks"]
    assert {victim.name, a.name, c.name} <= set(damaged)
    assert all("authentication failed" in v["problem"] for v in damaged.values()), damaged


def test_tampered_manifest_with_recomputed_checksum_is_refused(sealed):
    tmp, _, _, dr = sealed
    b = dr.create_full_backup("p", SPEC)
    snap = tmp / "offsite" / "snapshots"
    body = bytearray((snap / f"{b['id']}.json").read_bytes())
    body[-5] ^= 0x01
    (snap / f"{b['id']}.json").write_bytes(bytes(body))
    (snap / f"{b['id']}.sha256").write_text(hashlib.sha256(bytes(body)).hexdigest())
    report = _reopen(tmp, None).verify_backup_integrity(b["id"])
    assert report["ok"] is False and "authentication failed" in report["manifest"]


def test_wrong_or_missing_key_is_refused_with_what_to_do(sealed, tmp_path, monkeypatch):
    tmp, _, key, dr = sealed
    dr.create_full_backup("p", SPEC)
    other = tmp_path / "other.key"
    backup_crypto.create_key(other)
    backup_crypto._registry.clear()
    with pytest.raises(ValueError, match="is not this repository's"):
        open_repository(tmp / "offsite", PARAMS, key_file=other)
    moved = tmp_path / "moved.key"
    key.rename(moved)
    backup_crypto._registry.clear()
    with pytest.raises(ValueError, match="ATLAS_BACKUP_KEY_FILE"):
        open_repository(tmp / "offsite", PARAMS)
    monkeypatch.setenv("ATLAS_BACKUP_KEY_FILE", str(moved))  # the recovery procedure
    backup_crypto._registry.clear()
    assert open_repository(tmp / "offsite", PARAMS).sealer is not None


def test_plain_repository_is_not_turned_encrypted_in_place(tmp_path):
    open_repository(tmp_path / "repo", PARAMS)
    with pytest.raises(ValueError, match="new \\(empty\\) repository"):
        open_repository(tmp_path / "repo", PARAMS, key_file=tmp_path / "k.key")


def test_plan_key_file_auto_seals_only_outside_the_data_dir(tmp_path):
    data = tmp_path / "data"
    assert plan_key_file("p", {"encryption": "auto"}, data / "backups", data) is None
    assert plan_key_file("p", {"encryption": "auto"}, tmp_path / "usb", data) \
        == (data / "keys" / "backup-p.key").absolute()
    assert plan_key_file("p", {"encryption": "off"}, tmp_path / "usb", data) is None
    assert plan_key_file("p", {"encryption": "on", "key_file": "/k/x.key"},
                         data / "backups", data) == Path("/k/x.key")


def test_new_repository_folders_are_owner_only_whatever_the_umask(tmp_path):
    """An operator mounted into a host app runs under the host's umask (often 022): a new
    repository's folder, its chunks and snapshots are still 0700 — and with the modes the
    umask alone would give (0755) this fails."""
    old = os.umask(0o022)
    try:
        open_repository(tmp_path / "share" / "repo", PARAMS)
    finally:
        os.umask(old)
    for d in ("repo", "repo/chunks", "repo/snapshots"):
        assert stat.S_IMODE((tmp_path / "share" / d).stat().st_mode) == 0o700, d
