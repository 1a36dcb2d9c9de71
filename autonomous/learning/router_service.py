"""The Neural Router's side of the learning engine: ``POST /api/learning/route`` answers a
model, the propensity of that choice and a decision id; the outcome comes back through
feedback (``decision_id``).

Every decision is logged in ``learning_route_decisions`` (with the models that were allowed and
its propensity, for off-policy evaluation). Which models are allowed comes from a circuit per
model: ``breaker_failures`` consecutive failed calls (``error``: the model did not answer)
open it for ``breaker_reset_seconds``, so an outage takes a model out of the choice without
its errors being counted as wrong answers. The choice itself is a :class:`RouteChooser`: by
default per-class Thompson sampling (:mod:`autonomous.learning.route_bandit`) over the
answered outcomes in the log; the learning-bench ``RouteOptimizer`` fits the same interface.
Each decision publishes ``learning.route`` (the Neural Router dashboard counts them) and each
outcome with a latency writes the ``router.latency_ms`` series.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autonomous.context import OperatorContext
from autonomous.core.clock import iso
from autonomous.core.errors import Conflict, NotFound
from autonomous.learning.route_bandit import choose
from autonomous.store.timeseries import Point, TimeSeriesStore

__all__ = ["BanditChooser", "RouteChooser", "RouteDecision", "RouteService"]


@dataclass(frozen=True)
class RouteDecision:
    decision_id: str
    query_class: str
    model: str
    propensity: float
    allowed: tuple[str, ...]
    ts: float

    def as_dict(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "query_class": self.query_class,
                "model": self.model, "propensity": self.propensity,
                "allowed": list(self.allowed), "ts": iso(self.ts)}


class RouteChooser(Protocol):
    def choose(self, query_class: str, allowed: Sequence[str],
               stats: Mapping[str, tuple[int, int]]) -> tuple[str, float] | None:
        """(model, propensity) among ``allowed``; ``stats[model] = (successes, failures)``."""


class BanditChooser:
    def __init__(self, policy: Mapping[str, Any], seed: int | None = None) -> None:
        self.policy = policy
        self.rng = random.Random(seed)

    def choose(self, query_class: str, allowed: Sequence[str],
               stats: Mapping[str, tuple[int, int]]) -> tuple[str, float] | None:
        p = self.policy
        pick = choose(self.rng, list(allowed), stats, dict(p["cost"]),
                      (float(p["prior_alpha"]), float(p["prior_beta"])),
                      int(p["propensity_draws"]))
        return None if pick is None else (pick.model, pick.propensity)


class RouteService:
    def __init__(self, ctx: OperatorContext, chooser: RouteChooser | None = None) -> None:
        self.ctx = ctx
        self._chooser = chooser
        self._lock = threading.Lock()
        self.series = TimeSeriesStore(ctx.store, ctx.clock)

    def _policy(self) -> dict[str, Any]:
        return self.ctx.policy()["learning"]["routing"]

    def chooser(self) -> RouteChooser:
        if self._chooser is None:
            self._chooser = BanditChooser(self._policy())
        return self._chooser

    def _stats(self, query_class: str) -> dict[str, tuple[int, int]]:
        rows = self.ctx.store.query(
            "SELECT model, SUM(success = 1) s, SUM(success = 0) f FROM learning_route_decisions "
            "WHERE query_class=? AND success IN (0, 1) GROUP BY model", (query_class,))
        return {r["model"]: (int(r["s"] or 0), int(r["f"] or 0)) for r in rows}

    def open_circuits(self) -> dict[str, str]:
        """Model → why its circuit is open (the last ``breaker_failures`` calls all errors,
        the newest of them less than ``breaker_reset_seconds`` ago)."""
        p = self._policy()
        n, reset = int(p["breaker_failures"]), float(p["breaker_reset_seconds"])
        now = self.ctx.clock.now()
        out = {}
        for m in p["models"]:
            rows = self.ctx.store.query(
                "SELECT success, outcome_ts FROM learning_route_decisions WHERE model=? AND "
                "success IS NOT NULL ORDER BY outcome_ts DESC, rowid DESC LIMIT ?", (m, n))
            if len(rows) == n and all(r["success"] == -1 for r in rows) \
                    and now - float(rows[0]["outcome_ts"]) < reset:
                out[m] = f"{n} consecutive errors, retried after {reset:.0f}s"
        return out

    def route(self, query_class: str, allowed: Sequence[str] | None = None) -> RouteDecision:
        p = self._policy()
        models = [m for m in (allowed or p["models"]) if m in p["models"]]
        unknown = sorted(set(allowed or ()) - set(p["models"]))
        if unknown:
            raise NotFound(f"model {unknown[0]!r} is not in learning.routing.models "
                           f"({', '.join(p['models'])})")
        open_ = self.open_circuits()
        usable = [m for m in models if m not in open_]
        if not usable:  # every circuit open: try the least recently failed (half-open)
            usable = models
        with self._lock:
            pick = self.chooser().choose(query_class, usable, self._stats(query_class))
            if pick is None:
                raise Conflict("no model allowed")
            now = self.ctx.clock.now()
            d = RouteDecision(f"route-{uuid.uuid4().hex[:12]}", query_class, pick[0], pick[1],
                              tuple(usable), now)
            self.ctx.store.execute(
                "INSERT INTO learning_route_decisions(id, ts, query_class, model, propensity, "
                "allowed) VALUES (?,?,?,?,?,?)",
                (d.decision_id, now, query_class, d.model, d.propensity, json.dumps(usable)))
        self.ctx.bus.publish("learning.route", query_class=query_class, model=d.model)
        return d

    def record_outcome(self, decision_id: str, *, success: bool, error: bool = False,
                       latency_ms: float | None = None) -> dict[str, Any]:
        """``error``: the model did not answer (kept out of its quality estimate)."""
        row = self.ctx.store.query_one("SELECT model, query_class, success FROM "
                                       "learning_route_decisions WHERE id=?", (decision_id,))
        if row is None:
            raise NotFound(f"no route decision {decision_id!r}")
        if row["success"] is not None:
            raise Conflict(f"route decision {decision_id} already has its outcome")
        now = self.ctx.clock.now()
        code = -1 if error else int(bool(success))
        self.ctx.store.execute("UPDATE learning_route_decisions SET success=?, latency_ms=?, "
                               "outcome_ts=? WHERE id=?", (code, latency_ms, now, decision_id))
        if latency_ms is not None:
            self.series.write([Point("router.latency_ms", float(latency_ms), now,
                                     {"model": row["model"]})])
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
