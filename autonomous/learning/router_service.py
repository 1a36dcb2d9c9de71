"""The Neural Router's side of the learning engine: ``POST /api/learning/route`` answers a
model, the propensity of that choice and a decision id; the outcome comes back through
feedback (``decision_id``).

Every decision is logged in ``learning_route_decisions`` (with the models that were allowed and
its propensity, for off-policy evaluation). Which models are allowed comes from a circuit per
model: ``breaker_failures`` consecutive failed calls (``error``: the model did not answer)
open it for ``breaker_reset_seconds``, so an outage takes a model out of the choice without
its errors being counted as wrong answers. The choice itself is the one
:class:`~autonomous.learning.route_optimizer.RouteOptimizer` (the benchmarked contextual
bandit, ``bench/bench_router.py``), policy section ``learning_routing``
(``policies/learning_tuning.yaml``: costs, breaker); it is rebuilt from the log on start, so
a restart keeps what was learned.
Series (per ``model``, read by the Neural Router dashboard, desired_state/dashboards.yaml):
``router.decisions`` (1 per decision), ``router.success`` (1/0 per answered outcome),
``router.errors`` (1 per outcome where the model did not answer) and ``router.latency_ms``;
each decision also publishes ``learning.route``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.errors import Conflict, NotFound
from autonomous.learning.route_optimizer import RouteDecision, RouteOptimizer
from autonomous.resources.policy.learning_tuning import RoutingPolicy
from autonomous.store.timeseries import Point, TimeSeriesStore

__all__ = ["RouteDecision", "RouteService"]


class RouteService:
    def __init__(self, ctx: OperatorContext, *, seed: int | None = None) -> None:
        self.ctx = ctx
        self._seed = seed
        self._optimizer: RouteOptimizer | None = None
        self._lock = threading.Lock()
        self.series = TimeSeriesStore(ctx.store, ctx.clock)

    def _policy(self) -> RoutingPolicy:
        return RoutingPolicy.model_validate(self.ctx.policy()["learning_routing"])

    def optimizer(self) -> RouteOptimizer:
        """The chooser, rebuilt from the logged outcomes on first use; follows policy reloads."""
        p = self._policy()
        if self._optimizer is None:
            seed = self._seed if self._seed is not None else uuid.uuid4().int % 2**31
            opt = RouteOptimizer(p, seed=seed)
            for r in self.ctx.store.query(
                    "SELECT query_class, model, success, latency_ms, propensity FROM "
                    "learning_route_decisions WHERE success IS NOT NULL "
                    "ORDER BY outcome_ts, rowid"):
                opt.learn(r["query_class"], r["model"], success=r["success"] == 1,
                          error=r["success"] == -1, latency_ms=r["latency_ms"],
                          propensity=r["propensity"])
            self._optimizer = opt
        elif self._optimizer.policy != p:
            self._optimizer.policy = p
        return self._optimizer

    def open_circuits(self) -> dict[str, str]:
        """Model → why its circuit is open (the last ``breaker_failures`` calls all errors,
        the newest of them less than ``breaker_reset_seconds`` ago)."""
        p = self._policy()
        n, reset = p.breaker_failures, p.breaker_reset_seconds
        now = self.ctx.clock.now()
        out = {}
        for m in p.models:
            rows = self.ctx.store.query(
                "SELECT success, outcome_ts FROM learning_route_decisions WHERE model=? AND "
                "success IS NOT NULL ORDER BY outcome_ts DESC, rowid DESC LIMIT ?", (m, n))
            if len(rows) == n and all(r["success"] == -1 for r in rows) \
                    and now - float(rows[0]["outcome_ts"]) < reset:
                out[m] = f"{n} consecutive errors, retried after {reset:.0f}s"
        return out

    def route(self, query_class: str, allowed: Sequence[str] | None = None) -> RouteDecision:
        p = self._policy()
        models = [m for m in (allowed or p.models) if m in p.models]
        unknown = sorted(set(allowed or ()) - set(p.models))
        if unknown:
            raise NotFound(f"model {unknown[0]!r} is not in learning_routing.cost "
                           f"({', '.join(p.models)})")
        open_ = self.open_circuits()
        usable = [m for m in models if m not in open_]
        if not usable:  # every circuit open: try the least recently failed (half-open)
            usable = models
        with self._lock:
            now = self.ctx.clock.now()
            d = self.optimizer().suggest_model_for_query(
                query_class, usable, now=now, decision_id=f"route-{uuid.uuid4().hex[:12]}")
            if d is None:
                raise Conflict("no model allowed")
            self.ctx.store.execute(
                "INSERT INTO learning_route_decisions(id, ts, query_class, model, propensity, "
                "allowed) VALUES (?,?,?,?,?,?)",
                (d.decision_id, now, query_class, d.model, d.propensity,
                 json.dumps(list(d.allowed))))
        self.series.write([Point("router.decisions", 1.0, now, {"model": d.model})])
        self.ctx.bus.publish("learning.route", query_class=query_class, model=d.model)
        return d

    def record_outcome(self, decision_id: str, *, success: bool, error: bool = False,
                       latency_ms: float | None = None) -> dict[str, Any]:
        """``error``: the model did not answer (kept out of its quality estimate)."""
        row = self.ctx.store.query_one("SELECT model, query_class, success, propensity FROM "
                                       "learning_route_decisions WHERE id=?", (decision_id,))
        if row is None:
            raise NotFound(f"no route decision {decision_id!r}")
        if row["success"] is not None:
            raise Conflict(f"route decision {decision_id} already has its outcome")
        now = self.ctx.clock.now()
        code = -1 if error else int(bool(success))
        self.ctx.store.execute("UPDATE learning_route_decisions SET success=?, latency_ms=?, "
                               "outcome_ts=? WHERE id=?", (code, latency_ms, now, decision_id))
        opt = self.optimizer()
        with self._lock:
            try:
                opt.record_outcome(decision_id, success=success, error=error,
                                   latency_ms=latency_ms)
            except KeyError:  # decided before a restart (or dropped from pending)
                opt.learn(row["query_class"], row["model"], success=success, error=error,
                          latency_ms=latency_ms, propensity=row["propensity"])
        lab = {"model": str(row["model"])}
        points = [Point("router.errors", 1.0, now, lab) if error
                  else Point("router.success", float(bool(success)), now, lab)]
        if latency_ms is not None:
            points.append(Point("router.latency_ms", float(latency_ms), now, lab))
        self.series.write(points)
        return {"query_class": row["query_class"], "model": row["model"]}

    def stats(self) -> dict[str, Any]:
        rows = self.ctx.store.query(
            "SELECT query_class, model, COUNT(*) n, SUM(success = 1) s, SUM(success = 0) f, "
            "SUM(success = -1) e, AVG(latency_ms) lat FROM learning_route_decisions "
            "GROUP BY query_class, model ORDER BY query_class, model")
        return {"open_circuits": self.open_circuits(),
                "classes": [{"query_class": r["query_class"], "model": r["model"],
                             "decisions": r["n"], "successes": r["s"] or 0,
                             "failures": r["f"] or 0, "errors": r["e"] or 0,
                             "mean_latency_ms": r["lat"]} for r in rows]}
