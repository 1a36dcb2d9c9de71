"""Failure memory: records, similar failures, the one-success-table migration, recurring errors,
preventive actions, pruning."""

from __future__ import annotations

import pytest

from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.store import Store


@pytest.fixture
def mem(ctx) -> FailureMemory:
    return FailureMemory(ctx.store, ctx.clock, lambda: ctx.policy()["healing"]["memory"])


SIG = "nexus|exit|rc=1|KeyError: <str>"


def _seed(mem: FailureMemory, sig: str, strategy: str, outcomes: list[bool], **kw) -> None:
    for ok in outcomes:
        mem.record_failure(sig, context={"n": 1}, recovery_used=strategy, success=ok, **kw)


def test_record_and_update(mem):
    rid = mem.record_failure(SIG, context={"exit_code": 1}, service="nexus",
                             error_type="TRANSIENT")
    mem.update(rid, recovery_used="RESTART_SERVICE", success=True, notes="healed",
               duration_s=1.5)
    [row] = mem.get_similar_failures(SIG)
    assert row["recovery_used"] == "RESTART_SERVICE" and row["success"] is True
    assert row["context"] == {"exit_code": 1} and row["similarity"] == 1.0


def test_similar_failures_exact_first_then_similar(mem):
    mem.record_failure("robot|exit|rc=1|KeyError: <str>", context={})
    mem.record_failure(SIG, context={})
    mem.record_failure("nexus|slow|x|something else entirely", context={})
    rows = mem.get_similar_failures(SIG)
    assert [r["error_signature"] for r in rows] == [SIG, "robot|exit|rc=1|KeyError: <str>"]
    assert rows[1]["similarity"] < 1.0


def test_migration_folds_failure_outcomes_into_the_one_success_table(tmp_path):
    """An operator upgraded from a store whose ranking read healing_failures: the pairs only
    that table held are folded into healing_knowledge once; pairs healing_knowledge already
    counted are not counted twice."""
    db = tmp_path / "atlas.db"
    store = Store(db).open()
    store.execute("DELETE FROM schema_migrations WHERE component='healing_knowledge'")
    rows = [(SIG, "TRANSIENT", "RESTART_SERVICE", 1), (SIG, "TRANSIENT", "RESTART_SERVICE", 1),
            (SIG, "TRANSIENT", "RESTART_SERVICE", 0), (SIG, None, "RETRY", 0),
            (SIG, "TRANSIENT", "ROLLBACK", 1), (SIG, "TRANSIENT", None, None),
            (SIG, "TRANSIENT", "RETRY", None)]
    store.executemany("INSERT INTO healing_failures(error_signature, error_type, timestamp, "
                      "context, recovery_used, success) VALUES (?,?,?,'{}',?,?)",
                      [(sig, et, 100.0 + i, rec, ok) for i, (sig, et, rec, ok) in
                       enumerate(rows)])
    # already counted from the same steps: stays as it is
    store.execute("INSERT INTO healing_knowledge VALUES (?,?,?,?,?,?)",
                  (SIG, "TRANSIENT", "ROLLBACK", 4, 1, 50.0))
    store.close()
    store = Store(db).open()  # migrates
    got = {(r["error_type"], r["strategy"]): (r["successes"], r["failures"])
           for r in store.query("SELECT * FROM healing_knowledge WHERE error_signature=?",
                                (SIG,))}
    assert got == {("TRANSIENT", "RESTART_SERVICE"): (2, 1), ("TRANSIENT", "RETRY"): (0, 1),
                   ("TRANSIENT", "ROLLBACK"): (4, 1)}
    store.close()
    again = Store(db).open()  # applied once only
    assert again.query_one("SELECT SUM(successes) s FROM healing_knowledge")["s"] == 6
    again.close()


def test_recurring_errors_and_preventive_actions(mem, ctx):
    _seed(mem, SIG, "RESTART_SERVICE", [False, False, True], service="nexus",
          error_type="RESOURCE")
    mem.record_failure("robot|slow||x", context={}, service="robot")
    rec = mem.get_recurring_errors()
    assert [(r["error_signature"], r["count"]) for r in rec] == [(SIG, 3)]
    assert rec[0]["services"] == ["nexus"] and rec[0]["success_rate"] == pytest.approx(0.333)
    [action] = mem.generate_preventive_actions()
    assert "resources of nexus" in action["action"]
    assert "atlas-autonomous heal trigger" in action["action"]  # healing rarely works for it
    ctx.clock.advance(86400 + 1)
    assert mem.get_recurring_errors() == []


def test_prune_keeps_max_records(ctx):
    mem = FailureMemory(ctx.store, ctx.clock, lambda: {**ctx.policy()["healing"]["memory"],
                                                       "max_records": 5})
    for i in range(8):
        mem.record_failure(f"s{i}", context={})
    rows = ctx.store.query("SELECT error_signature FROM healing_failures ORDER BY id")
    assert [r[0] for r in rows] == ["s3", "s4", "s5", "s6", "s7"]


def test_prune_drops_rows_past_retention(ctx):
    mem = FailureMemory(ctx.store, ctx.clock, lambda: ctx.policy()["healing"]["memory"])
    mem.record_failure("old", context={})
    ctx.clock.advance(91 * 86400)
    mem.record_failure("new", context={})
    assert [r[0] for r in ctx.store.query("SELECT error_signature FROM healing_failures")] == \
        ["new"]
