"""Rollout state survives the operator: a reopened store resumes the phase; quarantine sticks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autonomous.evolution.staged_rollout import StagedRollout
from autonomous.evolution.store import RolloutStore
from autonomous.resources.policy.evolution import EvolutionPolicy
from autonomous.store.db import Store

ROOT = Path(__file__).resolve().parents[2]
ROLL = EvolutionPolicy.model_validate(yaml.safe_load(
    (ROOT / "policies" / "evolution.yaml").read_text())["spec"]["policy"]["evolution"]).rollout


def test_resume_after_reopen_and_quarantine_persists(tmp_path: Path) -> None:
    db = tmp_path / "op.db"
    with Store(db).open() as s:
        rs, sr = RolloutStore(s), StagedRollout(ROLL)
        st = sr.start_rollout("nexus", "1", "2", 10.0)
        rid = rs.create(st, 10.0)
        st = sr.advance_phase(st, 80.0)
        rs.transition(rid, st, "advance", "CANARY → BETA", 80.0, {"score": 100})
    # a new process (the operator restarted): same phase, same bake start
    with Store(db).open() as s:
        rs = RolloutStore(s)
        running = rs.running()
        assert list(running) == [rid] and running[rid].phase_index == 1
        assert running[rid].phase_started_at == 80.0
        sr = StagedRollout(ROLL, rs.quarantined())
        st = sr.rollback_phase(running[rid], "BETA: latency ×1.5")
        rs.transition(rid, st, "rollback", st.reason, 90.0)
    with Store(db).open() as s:
        rs = RolloutStore(s)
        assert rs.running() == {}
        assert rs.quarantined() == {("nexus", "2")}
        actions = [h["action"] for h in rs.history()]
        assert actions == ["rollback", "advance", "start"]
        assert rs.history()[1]["evidence"] == {"score": 100}
        assert rs.clear_quarantine("nexus", "2") and rs.quarantined() == set()
        assert rs.prune(before_ts=1000.0) == 1 and rs.history() == []


def test_one_running_rollout_per_service(tmp_path: Path) -> None:
    with Store(tmp_path / "op.db").open() as s:
        rs, sr = RolloutStore(s), StagedRollout(ROLL)
        rs.create(sr.start_rollout("nexus", "1", "2", 0.0), 0.0)
        with pytest.raises(ValueError, match="already has a running rollout"):
            rs.create(sr.start_rollout("nexus", "1", "3", 0.0), 0.0)
