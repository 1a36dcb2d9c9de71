"""``atlas-autonomous alerts``: the CLI command that the API's hints name."""

from __future__ import annotations

import json

import pytest

from autonomous.cli.main import dispatch
from tests.conftest import TOKEN, free_port, make_tree, service_yaml

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path, monkeypatch, operator_factory):
    """A real operator on one service, and the CLI arguments that reach it (token by env)."""
    monkeypatch.setenv("ATLAS_AUTONOMOUS_TOKEN", TOKEN)
    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    op = operator_factory(root).start()
    return op, ["--root", str(root), "--url", op.url]


def test_alerts_list_ack_and_a_missing_id_names_the_command(capsys, running):
    _, args = running
    assert dispatch(["alerts", *args]) == 0
    assert "alerts" in capsys.readouterr().out
    assert dispatch(["alerts", "ack", "987654321", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("404:") and "atlas-autonomous alerts" in err, err
    assert dispatch(["alerts", "ack", *args]) == 2
    assert "needs an alert id" in capsys.readouterr().out


def test_status_says_how_long_ago_a_controller_ran():
    from datetime import datetime, timezone

    from autonomous.cli.cmd_core import _ago

    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)
    assert [_ago(t, now) for t in ("2026-12-07T11:59:55.5Z", "2026-12-07T11:58:00+00:00",
                                   "2026-12-07T09:00:00Z", "2026-12-05T12:00:00Z", None,
                                   "garbage")] == \
        ["4 s ago", "2 min ago", "3 h ago", "2 d ago", "-", "garbage"]


def test_silences_add_list_expire_and_what_to_fix(capsys, running):
    op, args = running
    for bad, why in ((["add"], "at least one label matcher"),
                     (["add", "service"], "'service' is not a label matcher"),
                     (["add", "service=alpha"], "needs --comment"),
                     (["add", "service=alpha", "--comment", "x", "--duration", "soon"],
                      "--duration: 'soon' is not a number of seconds"),
                     (["expire"], "needs one silence id"), (["list", "x"], "no arguments")):
        assert dispatch(["silences", *bad, *args]) == 2, bad
        assert why in capsys.readouterr().out, bad
    assert dispatch(["silences", "add", "service=alpha", "alertname=cpu_high",
                     "--duration", "90m", "--comment", "deploying alpha", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("silence ") and "alertname=cpu_high, service=alpha" in out, out
    sid = int(out.split()[1])
    with op.client() as c:
        (row,) = c.get("/api/telemetry/silences", params={"active": True}).json()
    assert row["id"] == sid and row["matchers"] == {"service": "alpha",
                                                    "alertname": "cpu_high"}
    assert row["ends_at"] - row["starts_at"] == 5400 and row["comment"] == "deploying alpha"
    assert dispatch(["silences", "--json", *args]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [sid]
    assert dispatch(["silences", "expire", str(sid), *args]) == 0
    assert f"silence {sid} ended" in capsys.readouterr().out
    with op.client() as c:
        assert c.get("/api/telemetry/silences", params={"active": True}).json() == []
        (ended,) = c.get("/api/telemetry/silences").json()
    assert ended["expired_by"] == "api-token"
    assert dispatch(["silences", "--all", *args]) == 0
    assert "deploying alpha" in capsys.readouterr().out
    assert dispatch(["silences", "expire", "987654321", *args]) == 1
    assert capsys.readouterr().err.startswith("404:")
