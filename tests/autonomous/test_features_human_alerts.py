"""One human-alert store: self-healing's alerts for humans are telemetry alerts (one episode,
deduplicated against the hub's copy of ``alert.human``, resolved on recovery, read by the
brake and by the thin ``/api/healing/alerts``), and the migration folds the old
``healing_alerts`` table in and drops it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autonomous.core.clock import FakeClock
from autonomous.self_healing.alerts import RULE, HumanAlerts, human_alert_open
from autonomous.telemetry.alert_manager import AlertManager
from autonomous.store.timeseries import TimeSeriesStore
from autonomous.testing import make_context


def setup(tmp_path: Path) -> tuple[Any, HumanAlerts, AlertManager]:
    ctx = make_context(tmp_path, clock=FakeClock())
    human = HumanAlerts(ctx.store, ctx.bus, ctx.clock, lambda: ctx.policy()["healing"])
    am = AlertManager(ctx.store, ctx.clock, TimeSeriesStore(ctx.store, ctx.clock),
                      ctx.policy)
    return ctx, human, am


def test_a_healing_alert_is_one_telemetry_alert_with_its_context(tmp_path):
    ctx, human, am = setup(tmp_path)
    sub = ctx.bus.subscribe("alert.human")
    a = human.raise_alert("nexus", "TRANSIENT: crash", {
        "incident": "inc1", "severity": "high", "message": "nexus keeps crashing",
        "logs_tail": ["boom"], "graph_link": "/api/graph/why/x"})
    assert a is not None
    [open_] = am.active_alerts()
    assert open_["id"] == a["id"] and open_["rule"] == RULE and open_["state"] == "firing"
    assert open_["labels"] == {"alertname": RULE, "service": "nexus", "source": "self_healing",
                               "reason": "TRANSIENT: crash", "severity": "critical",
                               "incident": "inc1"}
    assert open_["summary"] == "nexus keeps crashing"
    assert open_["details"]["logs_tail"] == ["boom"]
    # the hub turns the published event into an alert too: it finds this one open
    ev = sub.get_nowait()
    assert ev is not None and ev.data["id"] == a["id"]
    labels = {"service": "nexus", "source": "self_healing", "reason": "TRANSIENT: crash"}
    same = am.trigger_alert("self_healing_alert", labels, severity="critical",
                            summary="nexus keeps crashing", actor="self_healing")
    assert same["id"] == a["id"] and len(am.active_alerts()) == 1
    # deduplicated while fresh; the thin read shows the old shape
    assert human.raise_alert("nexus", "TRANSIENT: crash", {"incident": "inc2"}) is None
    [row] = human.list(service="nexus", open_only=True)
    assert row["id"] == a["id"] and row["graph_link"] == "/api/graph/why/x"
    assert row["resolved_at"] is None and row["state"] == "firing"
    assert human_alert_open(ctx.store, "nexus", "TRANSIENT: crash")


def test_recovery_resolves_and_the_brake_read_follows(tmp_path):
    ctx, human, am = setup(tmp_path)
    human.raise_alert("*", "global brake", {"severity": "critical", "message": "too many"})
    human.raise_alert("nexus", "crash loop: isolated", {"incident": "i9"})
    assert human_alert_open(ctx.store, "*", "global brake")
    assert human.resolve("*", "released") == 1
    assert not human_alert_open(ctx.store, "*", "global brake")
    assert human_alert_open(ctx.store, "nexus", "crash loop: isolated")  # another service's
    [resolved] = [a for a in am.history() if a["labels"]["service"] == "*"]
    assert resolved["state"] == "resolved" and resolved["resolved_at"] is not None
    assert [a["labels"]["service"] for a in am.active_alerts()] == ["nexus"]
    assert human.list(service="*")[0]["resolved_at"] is not None


def test_migration_folds_healing_alerts_in_and_drops_the_table(tmp_path):
    ctx, _human, _am = setup(tmp_path)
    st = ctx.store
    # the store as it was before: healing_alerts, alerts without details; one alert the hub
    # had already copied from alert.human, one it had not (telemetry not running)
    st.execute("ALTER TABLE alerts DROP COLUMN details")
    st.execute("DROP INDEX alerts_rule")
    st.execute("DELETE FROM schema_migrations WHERE component='human_alerts'")
    st.execute("CREATE TABLE healing_alerts (id TEXT PRIMARY KEY, service TEXT NOT NULL, "
               "reason TEXT NOT NULL, ts REAL NOT NULL, payload TEXT NOT NULL, "
               "resolved_at REAL)")
    t = 1_700_000_000.0
    for hid, svc, resolved in (("a1", "nexus", None), ("a2", "robot", t + 5)):
        st.execute("INSERT INTO healing_alerts VALUES (?,?,?,?,?,?)",
                   (hid, svc, "crash loop: isolated", t, json.dumps(
                       {"id": hid, "service": svc, "severity": "critical",
                        "message": f"{svc} isolated", "logs_tail": ["x"]}), resolved))
    st.execute("INSERT INTO alerts(fingerprint, rule, source, labels, severity, summary, "
               "state, pending_since, fired_at, updated_at) VALUES ('fp', "
               "'self_healing_alert', 'manual', ?, 'critical', 'nexus isolated', 'firing', "
               "?, ?, ?)", (json.dumps({"alertname": "self_healing_alert", "service": "nexus",
                                        "source": "self_healing",
                                        "reason": "crash loop: isolated",
                                        "severity": "critical"}), t + 0.01, t, t))
    st.migrate()
    assert st.query_one("SELECT name FROM sqlite_master WHERE name='healing_alerts'") is None
    rows = st.query("SELECT * FROM alerts ORDER BY id")
    assert [(json.loads(r["labels"])["service"], r["state"]) for r in rows] == \
        [("nexus", "firing"), ("robot", "resolved")]  # nexus not copied twice
    robot = rows[1]
    assert robot["notified_at"] == t and robot["resolved_notified"] == 1  # not announced again
    assert json.loads(robot["details"])["logs_tail"] == ["x"]
    assert robot["summary"] == "robot isolated" and robot["severity"] == "critical"
