"""``atlas-autonomous report`` against a real operator with the sample NEXUS: the checklist is
computed from what answers, the test summary comes from a real junit XML, bench figures from
a result file, the rest are measured live or null with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import TOKEN, make_tree, service_yaml
from autonomous.testing import free_port

TINY = '''
import pytest
def test_passes(): assert 1 + 1 == 2
def test_fails(): assert "report" == "tested", "a real failure"
@pytest.mark.skip(reason="on purpose")
def test_skipped(): pass
'''


def _junit(tmp: Path) -> Path:
    (tmp / "tiny").mkdir()
    (tmp / "tiny" / "test_tiny.py").write_text(TINY)
    xml = tmp / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", str(tmp / "tiny")], cwd=tmp, capture_output=True,
                   timeout=120, check=False)
    return xml


def test_report_from_a_live_operator(tmp_path: Path, operator_factory: Any) -> None:
    root = make_tree(tmp_path / "tree", {"nexus": service_yaml("nexus", free_port())})
    op = operator_factory(root).start(40)
    op.wait_for(lambda: op.services()["nexus"]["health"] == "Healthy", 30, "nexus healthy")
    with op.client() as c:  # one heartbeat reaches telemetry before the report reads it
        op.wait_for(lambda: c.get("/api/telemetry/metrics?name=heartbeat_ok").json()["series"],
                    30, "a heartbeat from the sample NEXUS")
        openapi = c.get("/openapi.json").json()
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_dashboard.json").write_text(json.dumps(  # as bench/_common.write_result
        {"unix_time": time.time(), "machine": {"commit": None},
         "figures": {"first_contentful_paint_median_ms": 123.4,
                     "all_panels_filled_median_ms": None}, "peers": {}}))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "controllers.cli", "report", "--url", op.url,
                        "--out", str(out), "--junit", str(_junit(tmp_path)),
                        "--bench-dir", str(bench)], capture_output=True, text=True,
                       timeout=120, env={"ATLAS_AUTONOMOUS_TOKEN": TOKEN, "PATH": "/usr/bin",
                                         "PYTHONPATH": str(Path.cwd())})
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert f"{op.url}: generation 1, mode governed" in md
    assert "| NEXUS heartbeat | ✅ done | 1 heartbeat_ok series in telemetry |" in md
    assert "| Browser dashboards | ✅ done |" in md and "| Offline API docs | ✅ done |" in md
    learning = any(p.startswith("/api/learning/") for p in openapi["paths"])
    assert ("| Learning engine | ✅ done |" if learning else "| Learning engine | ❌ missing |") in md
    assert "3 tests from" in md and "1 passed, 1 failed, 1 skipped" in md
    assert "test_tiny::test_fails" in md and "a real failure" in md
    assert "| Dashboard first contentful paint (median) | 123.4 ms |" in md
    assert "| Dashboard every panel filled (median) | null |" in md
    assert "not measured: no " in md and "bench_rollout.json" in md
    assert "GET /healthz latency (median of 30) |" in md and "measured live now" in md
    cpu = next(ln for ln in md.splitlines() if ln.startswith("| Operator CPU over 3 s"))
    assert "% of a core | process_cpu_seconds_total" in cpu
    steps = md.split("## Next steps", 1)[1]
    assert "Fix the failing test" in steps and "test_fails" in steps
    assert "Measure: Rollout: canary to full" in steps
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert "<script" not in page and "src=" not in page  # self-contained
    assert "test_tiny::test_fails" in page


def test_report_says_when_no_operator_answers(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "controllers.cli", "report", "--url",
                        f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no operator answers" in r.stderr
    assert not (tmp_path / "report.md").exists()
