"""Issue 14.4 audit: an env value of a Service never leaves the operator except to the process
that needs it. A real operator runs a Service with env values (a secret-looking key and a plain
one); its env is changed (a restart), then broken in two ways (a non-string value, env written
as a string); ``plan`` is run on a proposed env change, ``status`` and ``validate`` on the
broken tree. Every place a value could surface is then searched: the validation messages and
the CLI's output, the API's answers, the console and structured logs, the knowledge graph and
every table of the store. The one exception is ``service_revisions.spec``: the store has to
keep a known-good revision's env to run it again on a rollback (the database is 0600)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autonomous.resources.loader import load_tree
from tests.conftest import TOKEN, free_port, make_tree, service_yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# one distinct value per path it goes through, so a leak names its path
RUNNING = {"DB_PASSWORD": "pw-running-7f3a91", "PLAIN_SETTING": "plain-running-0c5e27"}
CHANGED = {"DB_PASSWORD": "pw-changed-b81d44", "PLAIN_SETTING": "plain-changed-5a9e03"}
PROPOSED = {"DB_PASSWORD": "pw-proposed-e2c7d8"}
NON_STRING = 99887766123
AS_STRING = "DB_PASSWORD=pw-string-4d0b6c"
VALUES = [*RUNNING.values(), *CHANGED.values(), *PROPOSED.values(), str(NON_STRING),
          AS_STRING.split("=")[1]]


def _with_env(text: str, env: object) -> str:
    marker = "  stop_grace_seconds: 3\n"
    assert marker in text
    return text.replace(marker, marker + f"  env: {json.dumps(env)}\n")


def _leaks(text: str) -> list[str]:
    return [v for v in VALUES if v in text]


def _cli(*args: str, cwd: Path) -> str:
    env = {**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "controllers.cli", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    return out.stdout + out.stderr


def test_validation_messages_hide_env_values(tmp_path: Path) -> None:
    for i, env in enumerate(({"DB_PASSWORD": NON_STRING}, AS_STRING,
                             {"DB_PASSWORD": {"nested": RUNNING["DB_PASSWORD"]}},
                             {"DB_PASSWORD": [RUNNING["PLAIN_SETTING"]]})):
        root = make_tree(tmp_path / f"r{i}", {"a": _with_env(service_yaml("a", 9), env)})
        problems = [str(p) for p in load_tree(root).problems]
        assert problems and any("spec.env" in p for p in problems), (env, problems)
        assert not _leaks("\n".join(problems)), (env, problems)


def test_env_values_reach_the_process_and_nothing_else(tmp_path: Path,
                                                       operator_factory) -> None:
    port = free_port()
    root = make_tree(tmp_path / "root", {"alpha": _with_env(service_yaml("alpha", port),
                                                            RUNNING)})
    f = root / "desired_state" / "alpha.yaml"
    op = operator_factory(root).start()
    op.wait_for(lambda: op.services()["alpha"]["health"] == "Healthy", what="alpha healthy")
    old = op.services()["alpha"]["details"]["pid"]
    # the process got them (the one place they belong)
    with open(f"/proc/{old}/environ", "rb") as fh:
        environ = fh.read().decode()
    assert f"DB_PASSWORD={RUNNING['DB_PASSWORD']}" in environ

    # a changed env is a restart: a decision, an action and an outcome in the graph
    f.write_text(_with_env(service_yaml("alpha", port), CHANGED))
    op.wait_for(lambda: (s := op.services()["alpha"])["details"]["pid"] not in (None, old)
                and s["health"] == "Healthy", what="restart on env change")

    # plan on a proposed env change
    proposed = make_tree(tmp_path / "proposed", {"alpha": _with_env(service_yaml("alpha", port),
                                                                    PROPOSED)})
    plan_out = _cli("plan", "--root", str(proposed), "--url", op.url, "--data-dir",
                    str(op.data_dir), cwd=tmp_path)
    assert "Service/alpha" in plan_out, plan_out

    # two broken edits: a non-string value, then env as a string
    texts = []
    for env in ({"DB_PASSWORD": NON_STRING}, AS_STRING):
        f.write_text(_with_env(service_yaml("alpha", port), env))
        state = op.wait_for(lambda: (s := op.client().get("/api/desired-state").json())["error"]
                            and "spec.env" in s["error"]["text"] and s, what="rejected")
        texts.append(json.dumps(state))
        texts.append(_cli("status", "--url", op.url, "--data-dir", str(op.data_dir),
                          cwd=tmp_path))
        texts.append(_cli("validate", "--root", str(root), cwd=tmp_path))
    assert "spec.env" in texts[-1] and "spec.env" in texts[-2], texts[-2:]

    with op.client() as c:
        for path, params in [("/api/reconcile/status", {}), ("/api/desired-state", {}),
                             ("/api/reconcile/services/why", {}), ("/api/approvals", {}),
                             ("/api/graph/nodes", {"limit": 1000}),
                             ("/api/healing/history", {"limit": 200}),
                             ("/api/telemetry/logs", {"limit": 1000}),
                             ("/api/telemetry/traces", {"limit": 200}),
                             ("/api/policy", {})]:
            r = c.get(path, params=params)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            texts.append(f"{path}: {r.text}")
    op.stop()

    texts.append("console: " + op.log.read_text())
    for log in (op.data_dir / "logs").glob("*.jsonl*"):
        texts.append(f"{log.name}: " + log.read_text())
    db = op.data_dir / "atlas.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in tables:
            rows = con.execute(f"SELECT * FROM \"{t}\"").fetchall()  # noqa: S608 - own names
            dump = "\n".join(map(repr, rows))
            if t == "service_revisions":  # the revision a rollback runs again keeps its env
                assert CHANGED["DB_PASSWORD"] in dump
                continue
            texts.append(f"table {t}: {dump}")
    finally:
        con.close()
    found = {text.split(":", 1)[0][:60]: _leaks(text) for text in texts if _leaks(text)}
    assert not found, found
