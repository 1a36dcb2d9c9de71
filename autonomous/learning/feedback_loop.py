"""FeedbackLoop: feedback recorded, analysed per area, mapped to action items and, for alert
rules, turned into threshold proposals toward a target precision.

Feedback is one row per judgement of something the operator did or raised: an alert
acknowledged (``bad=0``: it was real) or labelled a false positive (``bad=1``), a heal or a
routed answer rated. ``area`` is ``<kind>:<name>`` (``alert:service_latency_high``,
``route:mmlu/abstract_algebra:strong``). :func:`~autonomous.learning.feedback_stats.analyze_areas`
flags an area only when its Wilson interval excludes the policy's baseline.

Alert tuning replays the labelled firings offline: each label carries the value the rule saw
when it fired, so a candidate threshold's precision (true firings still fired / all still
fired) and recall (true firings still fired / all true firings) are counted, beside the
threshold in force. A candidate is proposed only when the in-force precision is worse than the
target with an interval that says so, the step is within the policy's cap and bounds, recall
stays at or above ``min_recall`` and precision improves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autonomous.core.clock import Clock, iso
from autonomous.core.errors import NotFound, Problem, ValidationFailed
from autonomous.learning.feedback_stats import AreaFinding, analyze_areas, wilson
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.learning.candidate import Candidate
from autonomous.learning.proposal_patch import Key, Patch
from autonomous.store import Store

__all__ = ["FeedbackLoop", "tune_threshold"]


def _fires(op: str, value: float, threshold: float) -> bool:
    return value > threshold if op in (">", ">=") else value < threshold


def _score(op: str, labels: list[tuple[float, bool]], threshold: float) -> dict[str, Any]:
    fired = [bad for v, bad in labels if _fires(op, v, threshold)]
    true_all = sum(1 for _, bad in labels if not bad)
    tp = sum(1 for bad in fired if not bad)
    return {"value": threshold, "fired": len(fired), "true_positive": tp,
            "precision": tp / len(fired) if fired else None,
            "recall": tp / true_all if true_all else None}


def tune_threshold(op: str, current: float, labels: list[tuple[float, bool]], *,
                   low: float, high: float, max_step: float, target_precision: float,
                   min_recall: float) -> tuple[float, dict[str, Any], dict[str, Any]] | None:
    """Pure: the threshold to propose for a rule from labelled firings ``(value, bad)``.

    Candidates are the labelled values themselves (a firing at exactly the threshold no longer
    fires) within one step of ``current`` and within [low, high]; the first (smallest change)
    reaching the target precision with ``min_recall`` wins, else the one with the best
    precision above the in-force one. None when nothing qualifies.
    """
    if op not in (">", ">=", "<", "<="):
        return None
    up = op in (">", ">=")
    span = abs(current) * max_step
    lo_lim, hi_lim = (current, current + span) if up else (current - span, current)
    lo_lim, hi_lim = max(lo_lim, low), min(hi_lim, high)
    cands = sorted({v for v, _ in labels if lo_lim <= v <= hi_lim and v != current} |
                   ({hi_lim} if up and hi_lim != current else set()) |
                   ({lo_lim} if not up and lo_lim != current else set()),
                   reverse=not up)
    base = _score(op, labels, current)
    best: tuple[float, dict[str, Any]] | None = None
    for c in cands:
        s = _score(op, labels, c)
        if s["precision"] is None or (s["recall"] or 0.0) < min_recall:
            continue
        if s["precision"] >= target_precision:
            return c, base, s
        if s["precision"] > (base["precision"] or 0.0) and (
                best is None or s["precision"] > best[1]["precision"]):
            best = (c, s)
    return (best[0], base, best[1]) if best else None


class FeedbackLoop:
    def __init__(self, store: Store, graph: KnowledgeGraph, clock: Clock) -> None:
        self.store = store
        self.graph = graph
        self.clock = clock

    def record_feedback(self, *, area: str, kind: str, bad: bool, value: float | None = None,
                        ref: str | None = None, comment: str | None = None,
                        actor: str = "api") -> dict[str, Any]:
        """One judgement; linked in the graph to ``ref`` when that is a graph node id."""
        if ":" not in area:
            raise ValidationFailed([Problem("feedback", 0, "area", f"{area!r} must be "
                                            "'<kind>:<name>' (e.g. alert:service_latency_high)")])
        now = self.clock.now()
        with self.store.transaction():
            fid = self.store.execute(
                "INSERT INTO learning_feedback(ts, area, kind, bad, value, ref, comment, actor) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (now, area, kind, int(bad), value, ref, comment, actor)).lastrowid
            node = self.graph.add_entity("feedback", f"{area}: {kind}",
                                         attrs={"feedback_id": fid, "bad": bool(bad),
                                                "value": value, "actor": actor})
            if ref and self.graph.has(ref):
                self.graph.add_relation(node, "about", ref)
        return {"id": fid, "ts": iso(now), "area": area, "kind": kind, "bad": bool(bad),
                "value": value, "ref": ref, "graph_node": node}

    def counts(self, since: float | None = None, prefix: str | None = None
               ) -> dict[str, tuple[int, int]]:
        rows = self.store.query(
            "SELECT area, SUM(bad) b, COUNT(*) n FROM learning_feedback WHERE ts >= ? AND "
            "area LIKE ? GROUP BY area", (since or 0.0, f"{prefix or ''}%"))
        return {r["area"]: (int(r["b"]), int(r["n"])) for r in rows}

    def analyze_feedback(self, policy: dict[str, Any], since: float | None = None
                         ) -> list[dict[str, Any]]:
        """Per area: bad rate, Wilson interval, verdict (only when the interval excludes the
        baseline; fewer than ``min_samples`` is ``insufficient``)."""
        fp = policy["feedback"]
        counts = self.counts(since)
        out = []
        for f in analyze_areas(counts, fp["baseline_bad_rate"], fp["z"]):
            verdict = f.verdict if f.total >= fp["min_samples"] else "insufficient"
            out.append(_finding(f, verdict, fp["baseline_bad_rate"]))
        return out

    def identify_improvement_areas(self, policy: dict[str, Any]) -> list[dict[str, Any]]:
        return [f for f in self.analyze_feedback(policy) if f["verdict"] == "worse"]

    def generate_action_items(self, policy: dict[str, Any]) -> list[dict[str, Any]]:
        """Each worse area mapped to the policy file and rule that governs it."""
        items = []
        targets: dict[str, str] = policy["feedback"]["action_items"]
        for f in self.identify_improvement_areas(policy):
            kind, name = f["area"].split(":", 1)
            target = targets.get(kind)
            file, rule = target.split("#", 1) if target else (None, None)
            items.append({
                "area": f["area"], "file": file, "rule": f"{rule}.{name}" if rule else None,
                "finding": f,
                "action": (f"review {rule} '{name}' in {file}: {f['bad']}/{f['total']} bad "
                           f"feedback, interval [{f['low']:.2f}, {f['high']:.2f}] above the "
                           f"baseline {f['baseline']:.2f}") if file else
                          f"no policy mapped for feedback kind {kind!r} "
                          "(learning.feedback.action_items)"})
        return items

    # -- alerts: labels and acknowledgements ------------------------------------------------------
    def alert(self, alert_id: int) -> dict[str, Any]:
        """Rule and value of an alert the telemetry subsystem raised (its ``alerts`` table)."""
        row = self.store.query_one("SELECT id, rule, value FROM alerts WHERE id=?", (alert_id,))
        if row is None:
            raise NotFound(f"no alert {alert_id}; list them at GET /api/telemetry/alerts")
        return dict(row)

    def label_alert(self, alert_id: int, *, false_positive: bool, actor: str,
                    comment: str | None = None) -> dict[str, Any]:
        """Feedback on one alert: a false positive (bad) or a real one, with the value it saw."""
        a = self.alert(alert_id)
        return self.record_feedback(area=f"alert:{a['rule']}", kind="alert_label",
                                    bad=false_positive, value=a["value"],
                                    ref=f"alert:{alert_id}", comment=comment, actor=actor)

    def harvest_acks(self) -> int:
        """Acknowledged alerts not yet fed back become real-alert feedback (an ack says a
        person looked and it mattered); a label given for the same alert wins. Returns how
        many were added."""
        rows = self.store.query(
            "SELECT a.id, a.rule, a.value, a.acked_by FROM alerts a WHERE a.acked_at IS NOT "
            "NULL AND NOT EXISTS (SELECT 1 FROM learning_feedback f WHERE f.ref = 'alert:' || "
            "a.id) ORDER BY a.id")
        for r in rows:
            self.record_feedback(area=f"alert:{r['rule']}", kind="alert_ack", bad=False,
                                 value=r["value"], ref=f"alert:{r['id']}",
                                 actor=str(r["acked_by"] or "ack"))
        return len(rows)

    # -- alert thresholds toward a target precision -------------------------------------------
    def labels(self, rule: str) -> list[tuple[float, bool]]:
        return [(float(r["value"]), bool(r["bad"])) for r in self.store.query(
            "SELECT value, bad FROM learning_feedback WHERE area=? AND value IS NOT NULL "
            "ORDER BY id", (f"alert:{rule}",))]

    def alert_candidates(self, root: Path, policy: dict[str, Any],
                         alert_rules: list[dict[str, Any]]) -> list[Candidate]:
        lp, at = policy, policy["alert_tuning"]
        out = []
        for rule in alert_rules:
            name = str(rule.get("name", ""))
            bounds = at["rules"].get(name)
            if bounds is None or rule.get("type") != "threshold":
                continue
            labels = self.labels(name)
            if len(labels) < at["min_labels"]:
                continue
            bad = sum(1 for _, b in labels if b)
            lo, hi = wilson(bad, len(labels), lp["feedback"]["z"])
            if lo <= 1 - at["target_precision"]:
                continue  # the interval does not show precision below target
            located = _locate_rule(root, name)
            if located is None:
                continue
            file, path, in_file = located
            current = float(rule["value"])
            if in_file != rule["value"]:
                continue  # an overlay sets it: not this file's to change
            tuned = tune_threshold(rule["op"], current, labels, low=bounds["low"],
                                   high=bounds["high"],
                                   max_step=lp["proposals"]["max_step_fraction"],
                                   target_precision=at["target_precision"],
                                   min_recall=at["min_recall"])
            if tuned is None:
                continue
            new, base, prop = tuned
            new_value: float | int = int(new) if isinstance(in_file, int) and new == int(new) \
                else new
            out.append(Candidate(
                "feedback_loop.alert_tuning", f"alert {name}: precision below target",
                "learning.alert_tuning", f"alert {name}: threshold {in_file} → {new_value}",
                Patch(file, path, in_file, new_value), bounds["low"], bounds["high"],
                evidence={"labels": len(labels), "false_positive": bad,
                          "false_positive_rate_interval": [round(lo, 4), round(hi, 4)],
                          "target_precision": at["target_precision"], "sample_size": len(labels)},
                evaluation={"method": "offline replay of labelled firings",
                            "in_force": base, "proposed": prop},
                guard={"area": f"alert:{name}", "bad_rate_before": bad / len(labels)}))
        return out


def _finding(f: AreaFinding, verdict: str, baseline: float) -> dict[str, Any]:
    return {"area": f.area, "bad": f.bad, "total": f.total, "rate": round(f.rate, 4),
            "low": round(f.low, 4), "high": round(f.high, 4), "baseline": baseline,
            "verdict": verdict}


def _locate_rule(root: Path, name: str) -> tuple[str, tuple[Key, ...], Any] | None:
    """The policy file under ``root/policies`` declaring alert rule ``name``: (file, path to
    its ``value``, the value written there)."""
    for f in sorted((root / "policies").glob("*.yaml")):
        try:
            docs = list(yaml.safe_load_all(f.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):
            continue
        if len(docs) != 1 or not isinstance(docs[0], dict):
            continue
        rules = (((docs[0].get("spec") or {}).get("policy") or {}).get("telemetry") or {}) \
            .get("alerting", {}).get("rules") if isinstance(docs[0].get("spec"), dict) else None
        if not isinstance(rules, list):
            continue
        for i, r in enumerate(rules):
            if isinstance(r, dict) and r.get("name") == name and "value" in r:
                return (f"policies/{f.name}",
                        ("spec", "policy", "telemetry", "alerting", "rules", i, "value"),
                        r["value"])
    return None
