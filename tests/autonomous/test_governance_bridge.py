"""Governance bridge: the ATLAS governance state (file or HTTP endpoint) drives the mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from autonomous.core.errors import ValidationFailed
from autonomous.governance.bridge import BridgeState, SourceError, parse_state
from autonomous.resources.config.governance_bridge import GovernanceBridgeSettings
from autonomous.resources.loader import load_tree
from autonomous.testing import free_port, serve_http
from controllers.governance_bridge import GovernanceBridgeController, Observed
from controllers.operator import Operator
from tests.conftest import make_tree, service_yaml


def test_parse_accepts_json_yaml_and_plain_strings() -> None:
    s = parse_state('{"mode": "growth", "reason": "night shift"}', "f.json")
    assert (s.mode, s.reason) == ("growth", "night shift (from f.json)")
    assert parse_state("mode: emergency_stop\nreason: e-stop pressed\n", "f.yaml").mode \
        == "emergency_stop"
    assert parse_state('"governed"', "u").mode == "governed"
    assert parse_state("growth\n", "u").mode == "growth"
    assert parse_state('{"state": "GROWTH"}', "u").reason == \
        "ATLAS governance state growth (from u)"
    for bad in ('{"mode": "turbo"}', "[1, 2]", "{reason: x}", "mode: [unclosed"):
        with pytest.raises(SourceError, match="u:"):
            parse_state(bad, "u")


def test_diff_only_when_the_mode_differs() -> None:
    on = GovernanceBridgeSettings.model_validate({"source": {"file": "s.json"},
                                                  "interval_seconds": 1})
    off = GovernanceBridgeSettings.model_validate({"source": None, "interval_seconds": 1})
    want = BridgeState("growth", "why (from s.json)", "s.json")
    diff = GovernanceBridgeController.diff
    (a,) = diff(on, Observed("governed", want, None))
    assert (a.kind, a.params["mode"], a.params["reason"]) == ("mode", "growth",
                                                              "why (from s.json)")
    assert diff(on, Observed("growth", want, None)) == ()  # already in force: no new record
    assert diff(off, Observed("governed", want, None)) == ()
    assert diff(on, Observed("governed", None, "s.json: cannot read")) == ()
    assert diff(None, Observed("governed", want, None)) == ()


def test_config_section_is_validated(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree", {"alpha": service_yaml("alpha", free_port())})
    cfg = root / "config" / "autonomous.yaml"
    assert load_tree(root).tree is not None  # the default section loads
    cfg.write_text(cfg.read_text().replace(
        "governance_bridge: {source: null, interval_seconds: 5}",
        "governance_bridge: {source: {url: ftp://x}, interval_seconds: 5}"))
    result = load_tree(root)
    assert result.tree is None
    text = "\n".join(str(p) for p in result.problems)
    assert "autonomous.yaml" in text and "governance_bridge" in text
    with pytest.raises(ValidationFailed):
        Operator(root, data_dir=tmp_path / "data")


def _tree(tmp_path: Path, source: str) -> Path:
    root = make_tree(tmp_path / "tree", {"alpha": service_yaml("alpha", free_port())})
    cfg = root / "config" / "autonomous.yaml"
    cfg.write_text(cfg.read_text().replace(
        "governance_bridge: {source: null, interval_seconds: 5}",
        f"governance_bridge: {{source: {source}, interval_seconds: 0.1}}"))
    return root


async def _until(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def _runs(op: Operator) -> int:
    assert op.ctx is not None
    return op.ctx.status.controller("governance_bridge").runs


def test_state_file_edited_while_the_operator_runs(tmp_path: Path) -> None:
    state = tmp_path / "atlas-governance.json"
    state.write_text(json.dumps({"mode": "growth", "reason": "operator on shift"}))
    root = _tree(tmp_path, f"{{file: {state}}}")

    async def main() -> None:
        op = Operator(root, data_dir=tmp_path / "data")
        ctx = op.build()
        assert ctx.governance.mode == "governed"
        await op.start_background()
        try:
            await _until(lambda: ctx.governance.mode == "growth", "growth from the file")
            first = ctx.governance.history()
            assert first[0]["actor"] == "governance-bridge"
            assert first[0]["reason"] == f"operator on shift (from {state})"
            # several more reads of the same state: no repeated switch records
            runs = _runs(op)
            await _until(lambda: _runs(op) >= runs + 3, "three more bridge runs")
            assert ctx.governance.history() == first

            state.write_text("emergency_stop\n")  # the plain string form
            await _until(lambda: ctx.governance.mode == "emergency_stop", "emergency_stop")
            survival = ctx.subsystems["resilience"].survival
            await _until(survival.is_in_survival, "survival entered on emergency_stop")

            state.write_text("{not: [valid")  # unreadable: the mode stays, the status says why
            runs = _runs(op)
            await _until(lambda: _runs(op) >= runs + 2, "bridge runs on the broken file")
            assert ctx.governance.mode == "emergency_stop"
            res = ctx.status.controller("governance_bridge").resources["Governance/mode"]
            assert res.conditions["SourceReadable"].status == "False"
            assert "neither JSON nor YAML" in res.conditions["SourceReadable"].message

            state.write_text(json.dumps({"mode": "governed", "reason": "e-stop released"}))
            await _until(lambda: ctx.governance.mode == "governed", "governed again")
            await _until(lambda: not survival.is_in_survival(), "survival exited")
            modes = [h["new_mode"] for h in ctx.governance.history()]
            assert modes == ["governed", "emergency_stop", "growth"]
        finally:
            await op.stop_background()

    asyncio.run(main())


class _State(BaseHTTPRequestHandler):
    body = b'{"mode": "growth", "reason": "from the ATLAS governance endpoint"}'
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: Any) -> None:
        pass


def test_http_endpoint_drives_the_mode(tmp_path: Path) -> None:
    with serve_http(_State) as srv:
        url = f"http://127.0.0.1:{srv.server_address[1]}/governance/state"
        root = _tree(tmp_path, f"{{url: '{url}'}}")

        async def main() -> None:
            op = Operator(root, data_dir=tmp_path / "data")
            ctx = op.build()
            await op.start_background()
            try:
                await _until(lambda: ctx.governance.mode == "growth", "growth from HTTP")
                assert ctx.governance.history()[0]["reason"] == \
                    f"from the ATLAS governance endpoint (from {url})"
                hits = _State.hits
                await _until(lambda: _State.hits >= hits + 3, "three more polls")
                assert len(ctx.governance.history()) == 1
                _State.body = b'"governed"'
                await _until(lambda: ctx.governance.mode == "governed", "governed from HTTP")
                assert len(ctx.governance.history()) == 2
            finally:
                await op.stop_background()

        asyncio.run(main())
