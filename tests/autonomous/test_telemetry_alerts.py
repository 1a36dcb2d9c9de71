"""Alert manager: each rule type fires after its ``for`` and resolves; dedup, grouping, repeats,
escalation, acknowledgement, silences, inhibition, flapping, restart safety (FakeClock)."""

from __future__ import annotations

import copy

import pytest

from autonomous.core.errors import Conflict, ValidationFailed
from autonomous.store.timeseries import Point
from autonomous.telemetry.alert_manager import AlertManager
from autonomous.testing import make_context


class Recorder:
    """A channel that keeps what it was sent (the real channels have their own tests)."""

    type = "webhook"

    def __init__(self, name="hook"):
        self.name = name
        self.sent = []

    async def send(self, payload, timeout):
        self.sent.append(payload)


@pytest.fixture()
def env(tmp_path):
    ctx = make_context(tmp_path)
    policy = copy.deepcopy(ctx.policy())
    hook, mail = Recorder("hook"), Recorder("mail")
    mail.type = "email"
    from autonomous.store.timeseries import TimeSeriesStore

    ts = TimeSeriesStore(ctx.store, ctx.clock)
    am = AlertManager(ctx.store, ctx.clock, ts, lambda: policy, {"hook": hook, "mail": mail})
    yield ctx, ts, am, policy, hook, mail
    ctx.store.close()


def _write(ctx, ts, name, value, **labels):
    ts.write([Point(name, value, ctx.clock.now(), labels)])


def _step(ctx, ts, am, seconds, name="service.up", value=0.0, every=5, **labels):
    """Advance ``seconds`` writing a point and evaluating every ``every`` seconds."""
    labels = labels or {"service": "nexus"}
    for _ in range(int(seconds / every)):
        ctx.clock.advance(every)
        _write(ctx, ts, name, value, **labels)
        am.evaluate_rules()


async def _kinds(am, hook):
    await am.dispatch()
    return [(p["atlas"]["kind"], p["status"]) for p in hook.sent]


async def test_threshold_fires_after_for_then_group_wait_and_resolves_once(env):
    ctx, ts, am, _, hook, mail = env
    _write(ctx, ts, "service.up", 0.0, service="nexus")
    am.evaluate_rules()
    (a,) = am.active_alerts()
    assert a["state"] == "pending" and a["labels"]["service"] == "nexus"
    _step(ctx, ts, am, 10)  # the default rule holds 15 s
    assert am.active_alerts()[0]["state"] == "pending"
    _step(ctx, ts, am, 5)
    assert am.active_alerts()[0]["state"] == "firing"
    _step(ctx, ts, am, 25)
    assert await _kinds(am, hook) == []  # group_wait (30 s) not over yet
    _step(ctx, ts, am, 5)
    assert await _kinds(am, hook) == [("firing", "firing")]
    assert len(mail.sent) == 1  # critical → logbook, webhook, email
    _step(ctx, ts, am, 600)
    assert await _kinds(am, hook) == [("firing", "firing")]  # dedup: still one notice
    _step(ctx, ts, am, 30, value=1.0)
    _step(ctx, ts, am, 600, value=1.0)
    assert await _kinds(am, hook) == [("firing", "firing"), ("resolved", "resolved")]
    states = [t["to_state"] for t in reversed(am.db.transitions())]
    assert states == ["pending", "firing", "resolved"]


async def test_hysteresis_keeps_latency_alert_until_clear_level(env):
    ctx, ts, am, *_ = env
    _step(ctx, ts, am, 75, name="service.probe_latency_ms", value=800)
    assert am.active_alerts()[0]["state"] == "firing"
    _step(ctx, ts, am, 120, name="service.probe_latency_ms", value=400)  # below raise, above clear
    assert am.active_alerts()[0]["state"] == "firing"
    _step(ctx, ts, am, 120, name="service.probe_latency_ms", value=250)
    assert am.active_alerts() == []
    assert am.history()[0]["state"] == "resolved"


async def test_rate_rule_fires_on_rising_counter_and_resolves(env):
    ctx, ts, am, *_ = env
    count = 0.0
    for _ in range(60):  # +10 errors every 5 s = 2/s > 1/s
        ctx.clock.advance(5)
        count += 10
        _write(ctx, ts, "log_errors_total", count, service="robot")
        am.evaluate_rules()
    firing = [a for a in am.active_alerts() if a["rule"] == "error_rate_rising"]
    assert firing and firing[0]["state"] == "firing" and firing[0]["value"] == pytest.approx(2)
    _step(ctx, ts, am, 400, name="log_errors_total", value=count, service="robot")
    assert not [a for a in am.active_alerts() if a["rule"] == "error_rate_rising"]


async def test_anomaly_rule_follows_events_and_holds(env):
    ctx, ts, am, *_ = env
    assert am.observe_event("health.finding", {"type": "anomaly", "metric": "cpu.percent", "value": 99.0}) == 1
    assert am.observe_event("service.probe", {"metric": "cpu.percent"}) == 0
    am.evaluate_rules()
    (a,) = am.active_alerts()
    assert a["rule"] == "health_anomaly" and a["state"] == "firing"
    assert a["labels"]["metric"] == "cpu.percent"
    ctx.clock.advance(301)
    am.evaluate_rules()
    assert am.active_alerts() == []


async def test_compound_and_fires_only_when_both_hold(env):
    ctx, ts, am, *_ = env
    _step(ctx, ts, am, 120, name="service.probe_latency_ms", value=900, service="robot")
    assert not [a for a in am.active_alerts() if a["rule"] == "service_degraded"]
    count = 0.0
    for _ in range(40):
        ctx.clock.advance(5)
        count += 10
        _write(ctx, ts, "log_errors_total", count, service="robot")
        _write(ctx, ts, "service.probe_latency_ms", 900, service="robot")
        am.evaluate_rules()
    (deg,) = [a for a in am.active_alerts() if a["rule"] == "service_degraded"]
    assert deg["state"] == "firing" and deg["labels"]["service"] == "robot"


async def test_repeat_escalates_and_ack_stops_repeats(env):
    ctx, ts, am, policy, hook, mail = env
    policy["telemetry"]["alerting"]["routes"]["critical"] = ["logbook", "webhook"]
    _step(ctx, ts, am, 70)
    assert await _kinds(am, hook) == [("firing", "firing")]
    rep = policy["telemetry"]["alerting"]["repeat_interval_seconds"]
    _step(ctx, ts, am, rep, every=60)
    _step(ctx, ts, am, rep, every=60)
    kinds = await _kinds(am, hook)
    assert kinds == [("firing", "firing"), ("repeat", "firing"), ("repeat", "firing")]
    assert [p["atlas"]["escalated"] for p in hook.sent] == [False, False, True]
    assert len(mail.sent) == 1  # escalation adds the email receiver
    alert = am.active_alerts()[0]
    am.acknowledge(alert["id"], "alice", "on it")
    _step(ctx, ts, am, 3 * rep, every=300)
    assert len(await _kinds(am, hook)) == 3
    acks = [t for t in am.db.transitions(alert["id"]) if t["to_state"] == "acknowledged"]
    assert acks[0]["actor"] == "alice"
    _step(ctx, ts, am, 300, value=1.0)
    assert (await _kinds(am, hook))[-1] == ("resolved", "resolved")
    with pytest.raises(Conflict, match="only pending or firing"):
        am.acknowledge(alert["id"], "bob")


async def test_silence_mutes_until_it_ends(env):
    ctx, ts, am, _, hook, _ = env
    s = am.add_silence({"alertname": "service_down"}, duration_seconds=600, actor="bob")
    _step(ctx, ts, am, 300)
    assert am.active_alerts()[0]["silenced"] is True
    assert await _kinds(am, hook) == []
    _step(ctx, ts, am, 330)
    assert await _kinds(am, hook) == [("firing", "firing")]
    assert am.silences()[0]["id"] == s["id"] and am.silences(active_only=True) == []
    with pytest.raises(ValidationFailed, match="at least one label matcher"):
        am.add_silence({}, duration_seconds=60, actor="bob")


async def test_service_down_inhibits_latency_alert_of_same_service(env):
    ctx, ts, am, _, hook, _ = env
    for _ in range(30):
        ctx.clock.advance(5)
        _write(ctx, ts, "service.up", 0.0, service="nexus")
        _write(ctx, ts, "service.probe_latency_ms", 900.0, service="nexus")
        am.evaluate_rules()
    names = {a["rule"]: a for a in am.active_alerts()}
    assert names["service_latency_high"]["inhibited"] is True
    assert names["service_down"]["inhibited"] is False
    await am.dispatch()
    sent = [a["labels"]["alertname"] for p in hook.sent for a in p["alerts"]]
    assert sent == ["service_down"]


async def test_flapping_alert_is_reported_once(env):
    ctx, ts, am, policy, hook, _ = env
    rule = next(r for r in policy["telemetry"]["alerting"]["rules"] if r["name"] == "service_down")
    rule["for_seconds"], rule["window_seconds"] = 0, 5
    policy["telemetry"]["alerting"]["group_wait_seconds"] = 0
    policy["telemetry"]["alerting"]["group_interval_seconds"] = 1
    for i in range(12):
        _step(ctx, ts, am, 10, value=float(i % 2))
    await am.dispatch()
    kinds = [p["atlas"]["kind"] for p in hook.sent]
    assert kinds.count("flapping") == 1
    assert len(kinds) <= 6  # without flap detection every toggle would notify


async def test_restart_does_not_resend(env):
    ctx, ts, am, policy, hook, mail = env
    _step(ctx, ts, am, 70)
    await am.dispatch()
    assert len(hook.sent) == 1
    again = AlertManager(ctx.store, ctx.clock, ts, lambda: policy, {"hook": hook, "mail": mail})
    _step(ctx, ts, again, 120)
    await again.dispatch()
    assert len(hook.sent) == 1


async def test_trigger_alert_dedups_and_resolves(env):
    ctx, ts, am, _, hook, _ = env
    a = am.trigger_alert("healing_gave_up", {"service": "nexus"}, severity="critical",
                         summary="restart budget spent", actor="self_healing")
    b = am.trigger_alert("healing_gave_up", {"service": "nexus"}, severity="critical")
    assert a["id"] == b["id"] and a["state"] == "firing"
    am.evaluate_rules()
    ctx.clock.advance(30)
    am.evaluate_rules()
    await am.dispatch()
    assert hook.sent[0]["alerts"][0]["labels"]["alertname"] == "healing_gave_up"
    am.resolve_alert(a["id"], "alice")
    ctx.clock.advance(301)
    am.evaluate_rules()
    await am.dispatch()
    assert [p["status"] for p in hook.sent] == ["firing", "resolved"]
    with pytest.raises(ValidationFailed, match="'urgent' is not one of"):
        am.trigger_alert("x", severity="urgent")
