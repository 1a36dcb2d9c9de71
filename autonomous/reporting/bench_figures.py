"""The benchmarks' figures in the report: the one mapping from a report line to the result file
``bench/<name>.py`` writes through ``bench/_common.write_result`` (``<results>/<name>.json``)
and the key of our figure there, with the peer figure measured in the same run beside it.

A missing, unreadable or foreign file gives null with the reason; a file measured at another
commit is shown with its age and commit, and called stale when it is older than the current
commit's date."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["BENCH_FIGURES", "BenchFigure", "Figure", "bench_metrics", "head_commit",
           "results_dir"]

RESULTS_ENV = "ATLAS_BENCH_RESULTS"


@dataclass(frozen=True)
class BenchFigure:
    label: str
    unit: str
    bench: str  # bench/<bench>.py writes <results>/<bench>.json
    key: str  # in its "figures"
    peer: str | None = None  # key in its "peers": the peer measured in the same run
    peer_label: str | None = None  # what the peer is (and its unit where it differs)


F = BenchFigure
BENCH_FIGURES: tuple[BenchFigure, ...] = (
    F("Operator overhead (idle CPU)", "% of a core", "bench_operator", "idle_cpu_percent"),
    F("Operator start-up to API + services healthy (median)", "ms", "bench_operator",
      "startup_median_ms"),
    F("Crash (SIGKILL) to /health answering (median)", "ms", "bench_operator",
      "crash_to_healthy_median_ms", "supervisord_crash_to_healthy_median_ms", "supervisord"),
    F("Hot reload to generation in API (median)", "ms", "bench_operator", "reload_median_ms"),
    F("Operator overhead, all controllers (CPU)", "% of a core", "bench_health",
      "overhead_cpu_percent"),
    F("GET /api/health/comprehensive throughput", "req/s", "bench_health", "comprehensive_rps",
      "bare_fastapi_rps", "bare FastAPI constant"),
    F("NAB score (standard profile)", "score", "nab_eval", "score_standard",
      "HTM_score_standard", "HTM (published)"),
    F("NAB score (reward low FP)", "score", "nab_eval", "score_reward_low_FP_rate",
      "HTM_score_reward_low_FP_rate", "HTM (published)"),
    F("NAB score (reward low FN)", "score", "nab_eval", "score_reward_low_FN_rate",
      "HTM_score_reward_low_FN_rate", "HTM (published)"),
    F("Circuit breaker overhead per call (sync)", "ns", "bench_healing", "breaker_sync_ns",
      "pybreaker_sync_ns", "pybreaker"),
    F("MTTR, crash (median)", "ms", "bench_healing", "mttr_crash_median_ms",
      "supervisord_mttr_crash_median_ms", "supervisord"),
    F("MTTR, hang (median)", "ms", "bench_healing", "mttr_hang_median_ms",
      "supervisord_mttr_hang_median_ms", "supervisord (no health checks)"),
    F("Metric ingest", "points/s", "bench_telemetry", "ingest_points_per_s",
      "ingest_points_per_s_insert_per_point", "one INSERT+commit per point"),
    F("7-day metric query", "ms", "bench_telemetry", "query_7d_ms",
      "avg_7d_raw_points_ms", "same range from raw points"),
    F("Log search, rare word", "ms", "bench_telemetry", "search_rare_ms",
      "search_like_scan_ms", "LIKE scan"),
    F("Request with tracing middleware", "µs", "bench_telemetry", "traced_request_us",
      "untraced_request_us", "same app without it"),
    F("Admission: protected p99 under overload", "ms", "bench_overload", "p99_ms",
      "no_admission_p99_ms", "no admission control"),
    F("Admission: protected success under overload", "fraction", "bench_overload", "success",
      "no_admission_success", "no admission control"),
    F("Backup, full", "MiB/s", "bench_backup", "full_mib_per_s", "full_mib_per_s", "restic"),
    F("Restore", "MiB/s", "bench_backup", "restore_mib_per_s", "restore_mib_per_s", "restic"),
    F("Fault classes healed or contained", "classes", "fault_campaign",
      "classes_healed_or_contained"),
    F("Fault campaign: crash MTTR (median)", "s", "fault_campaign", "crash_mttr_median_s",
      "supervisord_crash_mttr_median_s", "supervisord"),
    F("Load with faults: CRITICAL success", "%", "load_with_faults", "critical_success_percent"),
    F("Load with faults: CRITICAL p99", "ms", "load_with_faults", "critical_p99_ms",
      "unloaded_critical_p99_ms", "the same operator unloaded"),
    F("Crash consistency: consistent runs", "runs", "crash_consistency", "consistent_runs"),
    F("Optimizer: throughput scenario, optimum reached (mean)", "fraction", "bench_optimizer",
      "throughput_reached_mean", "optuna_throughput_reached_mean", "Optuna TPE"),
    F("Optimizer: throughput scenario, unsafe trials (max)", "trials", "bench_optimizer",
      "throughput_unsafe_max", "optuna_throughput_unsafe_max", "Optuna TPE"),
    F("Optimizer: cache scenario, optimum reached (mean)", "fraction", "bench_optimizer",
      "cache_reached_mean", "optuna_cache_reached_mean", "Optuna TPE"),
    F("Optimizer: cache scenario, unsafe trials (max)", "trials", "bench_optimizer",
      "cache_unsafe_max", "optuna_cache_unsafe_max", "Optuna TPE"),
    F("Router regret per 1k queries", "per 1k", "bench_router", "regret_per_1k",
      "ucb1_regret_per_1k", "UCB1"),
    F("Router: failed share during outage (max)", "fraction", "bench_router",
      "outage_failed_share_max", "no_breaker_outage_failed_share_max", "no circuit breaker"),
    F("Knowledge graph reload (median)", "ms", "bench_graph", "reload_median_ms",
      "networkx_build_median_s", "networkx build from rows, s"),
    F("Knowledge graph why, from the store (CPU p95)", "ms", "bench_graph",
      "why_store_cpu_p95_ms"),
    F("Dashboard first contentful paint (median)", "ms", "bench_dashboard",
      "first_contentful_paint_median_ms", "static_file_response_end_median_ms",
      "static file, response end"),
    F("Dashboard every panel filled (median)", "ms", "bench_dashboard",
      "all_panels_filled_median_ms"),
    F("Rollout: canary to full", "s", "bench_rollout", "total_s"),
)
del F


def results_dir(repo: Path) -> Path:
    """$ATLAS_BENCH_RESULTS, else bench/results of the checkout."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env) if env else repo / "bench" / "results"


def head_commit(repo: Path) -> tuple[str, float] | None:
    """HEAD's hash and committer time of the checkout, or None where git cannot say."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%H %ct"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.split()
        return out[0], float(out[1])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def _age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 86400 else f"{seconds / 86400:.1f} days"


def _provenance(doc: dict[str, Any], head: tuple[str, float] | None, now: float) -> str:
    machine = doc.get("machine") or {}
    commit = str(machine.get("commit") or "unknown commit")[:10]
    when = doc.get("unix_time")
    if not isinstance(when, (int, float)):
        return f"measured at {commit}, time unknown"
    text = f"measured {_age(max(0.0, now - when))} ago at {commit}"
    if machine.get("dirty"):
        text += " with uncommitted changes"
    if head is not None and machine.get("commit") != head[0]:
        text += f" (HEAD {head[0][:10]}"
        text += (f"; stale: older than HEAD's date "
                 f"{datetime.fromtimestamp(head[1]).astimezone().isoformat(timespec='minutes')})"
                 if when < head[1] else ")")
    return text


def _missing(repo: Path, path: Path, bench: str) -> str:
    script = repo / "bench" / f"{bench}.py"
    if not script.is_file():
        return f"not measured: no {path} (no bench/{bench}.py in this checkout)"
    writes = "write_result(" in script.read_text(errors="replace")
    return (f"not measured: no {path} (run python3 bench/{bench}.py)" if writes else
            f"not measured: no {path} (bench/{bench}.py prints its figures but writes no "
            "result file yet)")


def _load(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable ({exc})"
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict):
        return None, f"{path}: no 'figures' (not written by bench/_common.write_result)"
    return doc, None


Figure = tuple[str, float | None, str, str]  # name, value (None: not measured), unit, source


def bench_metrics(repo: Path, bench_dir: Path, now: float | None = None) -> list[Figure]:
    """One (name, value, unit, source) per line of BENCH_FIGURES."""
    now = time.time() if now is None else now
    head = head_commit(repo)
    docs: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
    out: list[Figure] = []
    for f in BENCH_FIGURES:
        path = bench_dir / f"{f.bench}.json"
        if f.bench not in docs:
            docs[f.bench] = _load(path) if path.is_file() else (None, _missing(repo, path, f.bench))
        doc, why = docs[f.bench]
        if doc is None:
            out.append((f.label, None, f.unit, why or f"{path}: unreadable"))
            continue
        value = doc["figures"].get(f.key)
        source = f"{path}, {_provenance(doc, head, now)}"
        if f.key not in doc["figures"]:
            source = f"{path}: no figures.{f.key}"
        elif value is None:
            source = f"{path}: figures.{f.key} is null ({_provenance(doc, head, now)})"
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            source, value = f"{path}: figures.{f.key} is not a number ({value!r})", None
        if f.peer is not None and value is not None:
            peer = (doc.get("peers") or {}).get(f.peer)
            shown = f"{peer:g}" if isinstance(peer, (int, float)) else "null"
            source += f"; peer {f.peer_label}: {shown}"
        out.append((f.label, None if value is None else float(value), f.unit, source))
    return out
