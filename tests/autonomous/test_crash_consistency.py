"""The operator SIGKILLed at a random moment of reconcile, backup, restore, alert delivery and a
staged rollout, then started again on the same data dir: consistent store, no lost
acknowledged write, no duplicate notification, no orphan process, nothing half-applied
(see ``tests/autonomous/crash_harness.py``; the benchmark ``bench/crash_consistency.py`` does
100 such runs)."""

from __future__ import annotations

import random

import pytest

from tests.autonomous.crash_harness import OPERATIONS, crash_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_sigkill_during_operation_leaves_a_consistent_operator(tmp_path, operation):
    res = crash_run(tmp_path, operation, random.Random(f"crash-{operation}"))
    assert res.integrity == "ok"
    assert res.orphans == []
    assert res.lost_writes == []
    assert res.problems == []
    assert res.notices >= 1
    assert res.duplicates == [], res.duplicates
    assert res.half_applied == [], res.half_applied
