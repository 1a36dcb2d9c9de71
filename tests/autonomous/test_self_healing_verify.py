"""The verification rule as a pure function (``verify.judge``): a heal is verified only when a
new process answers its probe with the same pid for ``stable_seconds``; a new process that
exits first, or no proof within the limit, is a failure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autonomous.self_healing.verify import Seen, Watch, judge

STABLE, LIMIT = 1.0, 10.0

seens = st.builds(Seen, pid=st.sampled_from([None, 1, 2, 3]), running=st.booleans(),
                  returncode=st.sampled_from([None, 0, 1, -9]),
                  probe_ok=st.sampled_from([None, True, False]),
                  probe_message=st.sampled_from(["HTTP 200", "HTTP 500", ""]))


@given(st.lists(st.tuples(st.floats(0, 2), seens), max_size=30))
def test_judge_is_deterministic_and_never_verifies_without_stable_proof(steps):
    w, now = Watch(0.0, not_pid=1), 0.0
    for dt, seen in steps:
        now += dt
        got = judge(w, seen, now, STABLE, LIMIT)
        assert judge(w, seen, now, STABLE, LIMIT) == got
        w2, verdict = got
        if verdict is not None:
            if verdict.ok:  # the same new pid, answering, for at least STABLE seconds
                assert seen.running and seen.pid == w.pid != 1 and seen.probe_ok
                assert w.healthy_since is not None and now - w.healthy_since >= STABLE
            else:
                assert now >= LIMIT or (not seen.running and seen.pid not in (None, 1))
            return
        w = w2
        assert now < LIMIT


def test_a_new_process_proving_healthy_for_stable_seconds_is_verified():
    w = Watch(0.0, not_pid=1)
    w, v = judge(w, Seen(1, True), 0.1, STABLE, LIMIT)
    assert v is None and w.last == "old process still running"
    w, v = judge(w, Seen(2, True, probe_ok=True, probe_message="HTTP 200"), 0.2, STABLE, LIMIT)
    assert v is None and (w.pid, w.healthy_since) == (2, 0.2)
    w, v = judge(w, Seen(2, True, probe_ok=True, probe_message="HTTP 200"), 0.9, STABLE, LIMIT)
    assert v is None  # not stable for long enough yet
    _, v = judge(w, Seen(2, True, probe_ok=True, probe_message="HTTP 200"), 1.2, STABLE, LIMIT)
    assert v is not None and v.ok and v.pid == 2 and "pid 2" in v.message


def test_a_failed_probe_or_a_new_pid_starts_the_proof_again():
    w = Watch(0.0, not_pid=1, pid=2, healthy_since=0.2)
    w, v = judge(w, Seen(2, True, probe_ok=False, probe_message="HTTP 500"), 0.5, STABLE, LIMIT)
    assert v is None and w.healthy_since is None and w.last == "HTTP 500"
    w = Watch(0.0, not_pid=1, pid=2, healthy_since=0.2)
    w, v = judge(w, Seen(3, True, probe_ok=True), 1.5, STABLE, LIMIT)
    assert v is None and (w.pid, w.healthy_since) == (3, 1.5)


def test_a_new_process_that_exits_first_or_no_proof_in_time_fails():
    _, v = judge(Watch(0.0, not_pid=1), Seen(2, False, returncode=1), 0.3, STABLE, LIMIT)
    assert v is not None and not v.ok and "process 2 exited with code 1" in v.message
    _, v = judge(Watch(0.0, not_pid=1), Seen(1, True), 10.0, STABLE, LIMIT)
    assert v is not None and not v.ok and "not healthy within 10s" in v.message


def test_a_process_of_another_revision_neither_proves_nor_fails_a_rollback():
    # the owner's crash restart of the blocked revision, killed when the rollback lands
    w = Watch(0.0, not_pid=None, want_hash="good")
    w, v = judge(w, Seen(2, True, probe_ok=True, spec_hash="bad"), 0.1, STABLE, LIMIT)
    assert v is None and w.pid is None and "another revision" in w.last
    w, v = judge(w, Seen(2, False, returncode=-15, spec_hash="bad"), 0.2, STABLE, LIMIT)
    assert v is None
    w, v = judge(w, Seen(3, True, probe_ok=True, spec_hash="good"), 0.3, STABLE, LIMIT)
    assert v is None and (w.pid, w.healthy_since) == (3, 0.3)
    _, v = judge(w, Seen(3, True, probe_ok=True, spec_hash="good"), 1.4, STABLE, LIMIT)
    assert v is not None and v.ok and v.pid == 3
    _, v = judge(Watch(0.0, want_hash="good"), Seen(4, False, returncode=1, spec_hash="good"),
                 0.5, STABLE, LIMIT)
    assert v is not None and not v.ok and "process 4 exited" in v.message
