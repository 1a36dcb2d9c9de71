"""``atlas-autonomous restore`` never bypasses governance: through the running operator it is
the operator's request (202 + the approve command where policy wants approval); with no
operator answering, the same policy gate is applied offline and the same confinement."""

from __future__ import annotations

from pathlib import Path

import pytest

from autonomous.cli.main import dispatch
from autonomous.store import Store
from autonomous.testing import copy_default_tree, free_port
from tests.conftest import TOKEN, make_tree, service_yaml


def _tree_with_backup(tmp_path: Path, restore_gate: str | None = None) -> tuple[Path, str]:
    root = copy_default_tree(tmp_path / "root")
    if restore_gate is not None:
        base = root / "policies" / "base.yaml"
        text = base.read_text()
        assert "restore: require_approval" in text
        base.write_text(text.replace("restore: require_approval", f"restore: {restore_gate}"))
    Store(root / ".atlas-data" / "atlas.db").open().close()
    assert dispatch(["backup", "--root", str(root)]) == 0
    ids = sorted(p.stem for p in (root / ".atlas-data" / "backups" / "snapshots").glob("*.json"))
    return root, ids[0]


def _restore(root: Path, *rest: str) -> int:
    return dispatch(["restore", "--root", str(root), "--url",
                     f"http://127.0.0.1:{free_port()}", *rest])  # nothing listens there


def test_offline_restore_applies_the_policy_gate_and_refuses_with_the_commands(tmp_path, capsys):
    root, bid = _tree_with_backup(tmp_path)  # default policy: restore needs approval
    capsys.readouterr()
    assert _restore(root, bid, "wanted") == 1
    err = capsys.readouterr().err
    assert "governed mode" in err and "require_approval" in err, err
    assert "atlas-autonomous run" in err and "atlas-autonomous approvals approve" in err, err
    assert not (root / ".atlas-data" / "restores" / "wanted").exists()


def test_offline_restore_is_confined_like_the_api(tmp_path, capsys):
    root, bid = _tree_with_backup(tmp_path, "enforce")
    outside = tmp_path / "elsewhere"
    capsys.readouterr()
    assert _restore(root, bid, str(outside)) == 1
    assert "outside the allowed restore folders" in " ".join(capsys.readouterr().err.split())
    assert not outside.exists()
    assert _restore(root, bid, "../escape") == 1
    assert not (root / ".atlas-data" / "escape").exists()
    assert _restore(root, bid, "inside") == 0
    assert (root / ".atlas-data" / "restores" / "inside" / "config" / "autonomous.yaml").exists()


def test_offline_dry_run_writes_nothing(tmp_path, capsys):
    root, bid = _tree_with_backup(tmp_path, "dry_run")
    capsys.readouterr()
    assert _restore(root, bid, "dry") == 0
    assert "nothing was written" in capsys.readouterr().err
    assert not (root / ".atlas-data" / "restores" / "dry").exists()


def test_offline_restore_without_a_valid_tree_is_refused(tmp_path, capsys):
    root, bid = _tree_with_backup(tmp_path, "enforce")
    empty = tmp_path / "no-tree"
    empty.mkdir()
    capsys.readouterr()
    assert _restore(empty, "--repo", str(root / ".atlas-data" / "backups"), bid, "x") == 1
    assert "does not load" in capsys.readouterr().err
    assert not (empty / ".atlas-data" / "restores").exists()


@pytest.mark.e2e
def test_restore_through_the_running_operator_waits_for_approval(tmp_path, capsys,
                                                                 monkeypatch, operator_factory):
    monkeypatch.setenv("ATLAS_AUTONOMOUS_TOKEN", TOKEN)
    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    op = operator_factory(root).start()
    with op.client() as c:
        r = c.post("/api/resilience/backup", json={"plan": "operator"})
        assert r.status_code == 200, r.text
        bid = r.json()["id"]
    args = ["--root", str(root), "--data-dir", str(op.data_dir), "--url", op.url]
    capsys.readouterr()
    assert dispatch(["restore", *args, bid, "gated"]) == 3
    err = capsys.readouterr().err
    assert "awaiting_approval" in err and "approve with: atlas-autonomous approvals approve" \
        in err, err
    approval = err.rsplit("approvals approve ", 1)[1].split()[0]
    target = op.data_dir / "restores" / "gated"
    assert not target.exists()
    with op.client() as c:
        pending = c.get("/api/approvals").json()["approvals"]
    assert any(a["id"] == approval and a["action_kind"] == "restore" for a in pending)
    assert dispatch(["approvals", "approve", approval, "--url", op.url]) == 0
    op.wait_for(lambda: any(target.rglob("atlas.db")), timeout=30, what="restore carried out")
