"""Benchmark result files: bench/_common.write_result writes them, the report reads exactly the
names and keys of autonomous/reporting/bench_figures.py, with null and the reason for a missing
or foreign file and the age and commit (stale when older than HEAD's date) of an old one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autonomous.reporting import bench_figures
from autonomous.reporting.collect import REPO, Metric, Report, bench_metrics
from autonomous.reporting.render import markdown
from bench import _common


def _report(metrics: list[Metric]) -> str:
    op = {"url": "http://127.0.0.1:1", "generation": 1, "mode": "governed", "version": "t",
          "data_dir": "d"}
    return markdown(Report(generated_at="now", operator=op, subsystems=[], controllers=[],
                           checklist=[], integrations=[], tests=None, tests_reason="none",
                           metrics=metrics))


def _row(md: str, label: str) -> str:
    return next(ln for ln in md.splitlines() if ln.startswith(f"| {label} |"))


def test_write_result_records_machine_commit_and_both_sides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_BENCH_RESULTS", str(tmp_path / "res"))
    path = _common.write_result("bench_telemetry", {"ingest_points_per_s": 123456},
                                {"ingest_points_per_s_insert_per_point": 2345},
                                {"quick": True})
    assert path == tmp_path / "res" / "bench_telemetry.json"
    doc = json.loads(path.read_text())
    m = doc["machine"]
    assert m["cpu_count"] == os.cpu_count() and m["python"] == sys.version.split()[0]
    assert len(m["load_avg_start"]) == 3 and len(m["load_avg_end"]) == 3
    head = bench_figures.head_commit(REPO)
    assert head is not None and m["commit"] == head[0]
    assert abs(doc["unix_time"] - time.time()) < 60 and doc["timestamp"].endswith("Z")
    assert doc["figures"] == {"ingest_points_per_s": 123456}
    assert doc["peers"] == {"ingest_points_per_s_insert_per_point": 2345}
    assert doc["meta"] == {"quick": True}
    assert not list((tmp_path / "res").glob("*.tmp"))

    md = _report(bench_metrics(tmp_path / "res"))
    row = _row(md, "Metric ingest")
    assert "| 123456 points/s |" in row and f"at {head[0][:10]}" in row
    assert "peer one INSERT+commit per point: 2345" in row and "stale" not in row
    other = _row(md, "Log search, rare word")  # same file, key not written: null + why
    assert "| null |" in other and "no figures.search_rare_ms" in other
    missing = _row(md, "Backup, full")
    assert "| null |" in missing and "not measured: no " in missing
    assert "run python3 bench/bench_backup.py" in missing


def test_old_commit_is_shown_with_its_age_and_called_stale(tmp_path: Path) -> None:
    head = bench_figures.head_commit(REPO)
    assert head is not None
    old = {"name": "bench_router", "unix_time": head[1] - 2 * 86400,
           "machine": {"commit": "0123456789abcdef"}, "figures": {"regret_per_1k": 9.5},
           "peers": {"ucb1_regret_per_1k": None}}
    (tmp_path / "bench_router.json").write_text(json.dumps(old))
    (tmp_path / "bench_graph.json").write_text(json.dumps({"reload_ms": 3}))  # foreign format
    (tmp_path / "nab_eval.json").write_text("{not json")
    rows = {m.name: m for m in bench_metrics(tmp_path)}
    r = rows["Router regret per 1k queries"]
    assert r.value == 9.5 and "at 0123456789" in r.source and "stale" in r.source
    assert f"HEAD {head[0][:10]}" in r.source and "days ago" in r.source
    assert "peer UCB1: null" in r.source
    g = rows["Knowledge graph reload (median)"]
    assert g.value is None and "not written by bench/_common.write_result" in g.source
    n = rows["NAB score (standard profile)"]
    assert n.value is None and "unreadable" in n.source
    assert rows["Rollout: canary to full"].value is None


def test_a_real_bench_run_lands_in_the_report(tmp_path: Path) -> None:
    env = {**os.environ, "ATLAS_BENCH_RESULTS": str(tmp_path), "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(REPO / "bench" / "bench_router.py"), "--seeds", "1"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert r.returncode in (0, 1), r.stderr  # 1: the bar missed, still a measured result
    assert "| router | regret / 1k (mean)" in r.stdout  # the printed table is unchanged
    doc = json.loads((tmp_path / "bench_router.json").read_text())
    assert doc["meta"]["seeds"] == [0, 0] and doc["machine"]["cpu_count"] == os.cpu_count()
    ours, peer = doc["figures"]["regret_per_1k"], doc["peers"]["ucb1_regret_per_1k"]
    assert f"| ours (per-domain Thompson) | {ours:.1f} |" in r.stdout
    row = _row(_report(bench_metrics(tmp_path)), "Router regret per 1k queries")
    assert f"| {ours:g} per 1k |" in row and f"peer UCB1: {peer:g}" in row
