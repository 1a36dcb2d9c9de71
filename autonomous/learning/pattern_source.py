"""The rows PatternAnalyzer works on, read from the operator's store (the analyzer stays pure).

* request history: the Neural Router's requests (``learning_route_decisions``), counted per
  bucket as the series ``router.requests``;
* telemetry history: the series named in ``learning_patterns.series`` (raw samples, newest
  ``history_seconds``), each with its aggregation (``sum`` for counts, ``mean`` for gauges);
* decision sequences: the graph's ``decision`` nodes, keyed by the resource each is ``about``
  (``operator`` when none), their label as the action.

:func:`live_patterns` runs the analyzer on them; ``/api/learning/patterns`` serves it and
``/api/learning/insights`` adds its insights (each citing its series or graph entities).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.clock import iso
from autonomous.learning.pattern_analyzer import PatternAnalyzer, Point, decision_sequences
from autonomous.resources.policy.learning_tuning import PatternPolicy
from autonomous.store.timeseries import TimeSeriesStore

__all__ = ["REQUESTS", "decision_rows", "live_patterns", "request_points", "telemetry_points"]

REQUESTS = "router.requests"


def request_points(ctx: OperatorContext, p: PatternPolicy, since: float) -> list[Point]:
    w = p.bucket_seconds
    rows = ctx.store.query_tuples(
        "SELECT CAST(ts / ? AS INTEGER) b, COUNT(*) FROM learning_route_decisions WHERE ts >= ? "
        "GROUP BY b ORDER BY b", (w, since))
    return [Point(REQUESTS, float(b) * w, float(n)) for b, n in rows]


def telemetry_points(ctx: OperatorContext, p: PatternPolicy, since: float
                     ) -> dict[str, list[Point]]:
    ts = TimeSeriesStore(ctx.store, ctx.clock)
    return {name: [Point(name, s.ts, s.value)
                   for s in ts.query(name, start=since, resolution="raw")]
            for name in p.series}


def decision_rows(ctx: OperatorContext, since: float, limit: int
                  ) -> list[tuple[str, float, str]]:
    rows = ctx.store.query_tuples(
        "SELECT COALESCE((SELECT e.dst FROM graph_edges e WHERE e.src = n.id AND "
        "e.rel = 'about' LIMIT 1), 'operator'), n.ts, n.label FROM graph_nodes n "
        "WHERE n.type = 'decision' AND n.ts >= ? ORDER BY n.ts DESC LIMIT ?", (since, limit))
    return [(str(e), float(t), str(a)) for e, t, a in rows]


def live_patterns(ctx: OperatorContext, p: PatternPolicy) -> dict[str, Any]:
    """Patterns, anomalies, the next decision and insights over the recorded history."""
    a = PatternAnalyzer(p)
    since = ctx.clock.now() - p.history_seconds
    counts = request_points(ctx, p, since)
    gauges = telemetry_points(ctx, p, since)
    by_agg: dict[str, list[Point]] = {"sum": list(counts), "mean": []}
    for name, pts in gauges.items():
        by_agg[p.series[name]].extend(pts)
    patterns = [u for agg, pts in by_agg.items()
                for u in a.analyze_usage_patterns(pts, agg=agg)]
    anomalies = [x for agg, pts in by_agg.items()
                 for x in a.detect_anomalous_behavior(pts, agg=agg)]
    seqs = decision_sequences(decision_rows(ctx, since, p.max_decisions))
    newest = max(seqs, key=lambda k: len(seqs[k]), default=None)
    prefix = seqs[newest][-2:] if newest is not None else []
    nxt = a.predict_next_action(seqs, prefix) if seqs else None
    insights = a.generate_insights(patterns, anomalies, nxt)
    empty = [n for n in [REQUESTS, *p.series] if n not in {u.series for u in patterns}]
    return {
        "patterns": [_plain(asdict(u)) for u in patterns],
        "anomalies": [{**asdict(x), "ts": iso(x.ts)} for x in anomalies],
        "next_action": None if nxt is None else {**_plain(asdict(nxt)), "prefix": prefix},
        "insights": [_plain(asdict(i)) for i in insights],
        "sources": {"since": iso(since), "request_buckets": len(counts),
                    "telemetry_samples": {k: len(v) for k, v in gauges.items()},
                    "decision_sequences": len(seqs), "no_history": empty},
        "reason": None if patterns or nxt else
        f"no request, telemetry or decision history since {iso(since)}"}


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(map(_tuple, v)) if isinstance(v, tuple) else v) for k, v in d.items()}


def _tuple(v: object) -> object:
    return list(v) if isinstance(v, tuple) else v
