"""Detection: a breaker opened by the probes of one process names that process, so the restart
healing asks for is satisfied at once when the owner already replaced it (a SIGKILL whose
refused probes open the breaker after the owner's own restart must not restart the new pid)."""

from __future__ import annotations

from autonomous.core.events import Event, EventBus
from autonomous.self_healing.breakers import BreakerRegistry
from autonomous.self_healing.detection import Detector


def _probe(pid: int, ok: bool, **more: object) -> Event:
    data = {"service": "nexus", "pid": pid, "ok": ok, "latency_ms": 2.0 if ok else None,
            "status_code": 200 if ok else None, "error": None if ok else "connection refused",
            **more}
    return Event("service.probe", data)


def _detector(ctx) -> Detector:
    policy = lambda: ctx.policy()["healing"]  # noqa: E731
    reg = BreakerRegistry(ctx.store, EventBus(), ctx.clock, policy)
    return Detector(ctx.clock, reg, lambda: None, lambda: None, policy)


def test_breaker_report_names_the_process_its_probes_saw(ctx):
    det = _detector(ctx)
    assert det.feed_probe(_probe(101, True)) == ("", None)
    report = None
    for _ in range(20):
        verdict, report = det.feed_probe(_probe(101, False))
        if report is not None:
            break
    assert report is not None and verdict == "opened:unresponsive"
    assert report.context["pid"] == 101


def test_probes_of_a_process_never_proven_do_not_feed_the_breaker(ctx):
    det = _detector(ctx)
    det.feed_probe(_probe(101, True))
    for _ in range(20):
        assert det.feed_probe(_probe(202, False)) == ("", None)  # 202 has not answered yet
