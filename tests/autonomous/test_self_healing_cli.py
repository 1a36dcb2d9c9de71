"""``atlas-autonomous heal ...`` against the real app (TestClient in place of the HTTP hop)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from autonomous.api.app import create_app
from autonomous.cli import cmd_healing
from autonomous.cli.main import dispatch
from autonomous.self_healing.facade import HealingFacade
from tests.autonomous.healing_fakes import drain, healing_context, spec


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapping in the captured output
    ctx, _fake, orch = healing_context(tmp_path, {"nexus": spec(core=True)})
    ctx.subsystems["healing"] = HealingFacade(orch)
    with TestClient(create_app(ctx)) as tc:
        tokens = {"token": "test-token"}

        class Client:
            """ApiClient over the TestClient (same request signature, same token header)."""

            def __init__(self, args):
                self.base = "http://testserver"

            def request(self, method, path, **kw):
                headers = kw.pop("headers", {})
                if tokens["token"]:
                    headers["Authorization"] = f"Bearer {tokens['token']}"
                return tc.request(method, path, headers=headers, **kw)

        monkeypatch.setattr(cmd_healing, "ApiClient", Client)
        yield orch, tokens
    ctx.store.close()


def test_trigger_then_history_and_stats(cli, capsys):
    orch, _ = cli
    assert dispatch(["heal", "trigger", "nexus", "--strategy", "RESTART_SERVICE",
                     "--reason", "stuck", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["state"] == "open" and row["strategy"] == "RESTART_SERVICE"  # started
    asyncio.run(drain(orch))  # the healing controller's passes verify and settle it
    assert dispatch(["heal", "history", "--service", "nexus", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [row["id"]]
    assert dispatch(["heal", "history"]) == 0
    assert "RESTART_SERVICE" in capsys.readouterr().out
    assert dispatch(["heal", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["total"]["healed"] == 1
    assert dispatch(["heal", "stats"]) == 0
    assert "heal:nexus" in capsys.readouterr().out


def test_pause_resume_and_errors(cli, capsys):
    orch, tokens = cli
    assert dispatch(["heal", "pause", "nexus", "--reason", "maintenance"]) == 0
    assert "paused" in capsys.readouterr().out and orch.state("nexus").paused_by_human
    assert dispatch(["heal", "resume", "nexus"]) == 0
    assert "active" in capsys.readouterr().out and not orch.state("nexus").paused_by_human
    assert dispatch(["heal", "trigger", "ghost"]) == 1
    assert "404" in capsys.readouterr().err
    tokens["token"] = None
    assert dispatch(["heal", "pause", "nexus"]) == 1
    assert "401" in capsys.readouterr().err and not orch.state("nexus").paused_by_human
    with pytest.raises(SystemExit):
        dispatch(["heal", "trigger", "nexus", "--strategy", "PRAY"])
