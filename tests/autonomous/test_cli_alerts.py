"""``atlas-autonomous alerts``: the CLI command that the API's hints name."""

from __future__ import annotations

import pytest

from autonomous.cli.main import dispatch
from tests.conftest import TOKEN, free_port, make_tree, service_yaml

pytestmark = pytest.mark.e2e


def test_alerts_list_ack_and_a_missing_id_names_the_command(tmp_path, capsys, monkeypatch,
                                                             operator_factory):
    monkeypatch.setenv("ATLAS_AUTONOMOUS_TOKEN", TOKEN)
    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    op = operator_factory(root).start()
    args = ["--root", str(root), "--url", op.url]
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
