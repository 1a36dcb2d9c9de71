"""Carrying out one planned action: governance gate, per-resource backoff, knowledge graph.

    enforce           → act, record the outcome
    dry_run           → record the decision, do nothing
    require_approval  → an approval request bound to (generation, exact action); the action
                        runs on a later reconcile once approved, never after a rejection

A failing action backs off per resource (exponential, capped, jittered, from
``reconcile.action_backoff``); success resets it. Past ``max_retries`` the resource is Stalled
until the generation changes.

A decision repeated unchanged — the same gate, mode, generation and exact action ending in the
same not-done outcome (a pending approval, a dry-run, a rejection) — does not add a new chain:
the existing observation → decision → action → outcome nodes get ``repeats`` + 1 and a new
``last_seen`` (:meth:`KnowledgeGraph.touch`), so a long wait for approval stays a few rows.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.backoff import Backoff, BackoffSpec
from autonomous.governance.approvals import approve_command
from controllers.base import Action, Controller, Outcome

__all__ = ["Executor"]

log = logging.getLogger("atlas.execution")


@dataclass
class _RetryState:
    backoff: Backoff
    not_before: float = 0.0
    stalled_generation: int | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Recorded:
    """The last chain recorded for one (controller, resource) whose action was not done."""

    signature: tuple[Any, ...]
    nodes: tuple[str, ...]   # observation, decision, action, outcome


class Executor:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self._retry: dict[tuple[str, str], _RetryState] = {}
        self._recorded: dict[tuple[str, str], _Recorded] = {}
        self._chains: dict[tuple[str, str], list[str]] = {}  # the chain of the last execute

    def chain_of(self, c: Controller, action: Action) -> list[str]:
        """Graph nodes (observation, decision[, action, outcome]) of the action executed
        last for ``action``'s resource — the decision is there while ``act`` runs."""
        return list(self._chains.get(_retry_key(c, action), ()))

    def next_retry(self, controller: str) -> float | None:
        now = self.ctx.clock.monotonic()
        waits = [s.not_before - now for (c, _), s in self._retry.items()
                 if c == controller and s.not_before > now and s.stalled_generation is None]
        return min(waits) if waits else None

    async def execute(self, c: Controller, action: Action, generation: int) -> Outcome:
        key = _retry_key(c, action)
        state = self._retry.get(key)
        now = self.ctx.clock.monotonic()
        if state is not None:
            if state.stalled_generation is not None:
                if state.stalled_generation == generation:
                    return Outcome(action, False, f"Stalled: {state.last_error}", permanent=True)
                del self._retry[key]
                state = None
            elif now < state.not_before:
                return Outcome(action, False, f"backing off for {state.not_before - now:.2f}s "
                                              f"after: {state.last_error}",
                               retry_after=state.not_before - now)
        mode = self.ctx.governance.mode
        gate = self.ctx.governance.action_mode(action.kind)
        if gate == "enforce":
            chain = self._decision_chain(c, action, generation, mode, gate)
            self._chains[key] = chain
            outcome = await self._gated(c, action, generation, mode, gate)
            self._backoff(c, action, outcome, generation)
            self._chains[key] = [*chain, *self._record_outcome(c, action, outcome, chain)]
            self._recorded.pop(key, None)
            return outcome
        # dry_run / require_approval: decided first, recorded after, so that a decision
        # repeated unchanged updates its chain instead of adding one per pass
        outcome = await self._gated(c, action, generation, mode, gate)
        self._backoff(c, action, outcome, generation)
        signature = _signature(action, generation, mode, gate, outcome)
        prev = self._recorded.get(key)
        if (signature is not None and prev is not None and prev.signature == signature
                and self.ctx.graph.touch(prev.nodes)):
            self.ctx.status.controller(c.name).last_decisions[action.resource] = prev.nodes[-1]
            self._chains[key] = list(prev.nodes)
            return outcome
        chain = self._decision_chain(c, action, generation, mode, gate)
        self._chains[key] = chain
        ids = self._record_outcome(c, action, outcome, chain)
        self._chains[key] = [*chain, *ids]
        if signature is None:
            self._recorded.pop(key, None)
        else:
            self._recorded[key] = _Recorded(signature, (*chain, *ids))
        return outcome

    def settled(self, c: Controller, action: Action, outcome: Outcome, generation: int) -> None:
        """The verified outcome of an action whose ``act`` only started it (a healing ladder
        step, verified on later passes): its per-resource back-off as if ``act`` had
        returned it."""
        self._backoff(c, action, outcome, generation)

    async def _gated(self, c: Controller, action: Action, generation: int, mode: str,
                     gate: str) -> Outcome:
        if gate == "dry_run":
            return Outcome(action, True, f"dry-run in mode {mode}: decided and recorded, not done",
                           details={"dry_run": True})
        if gate == "require_approval":
            approvals = self.ctx.approvals
            if approvals.take_approved(action.key(), generation) is None:
                if approvals.rejected(action.key(), generation):
                    return Outcome(action, True, "rejected by a human; not done",
                                   details={"rejected": True})
                ttl = self.ctx.policy()["governance"]["approval_ttl_seconds"]
                req = approvals.request(controller=c.name, resource=action.resource,
                                        action_kind=action.kind, action=action.as_dict(),
                                        action_hash=action.key(), generation=generation,
                                        mode=mode, ttl=ttl)
                return Outcome(action, True, f"awaiting approval {req['id']}: "
                               f"{approve_command(req['id'])}",
                               details={"approval": req["id"], "pending": True})
        try:
            return await c.act(action)
        except Exception as exc:  # noqa: BLE001 - an action failing is an outcome, not a crash
            log.warning("%s: %s %s failed: %s", c.name, action.kind, action.resource, exc)
            return Outcome(action, False, f"{type(exc).__name__}: {exc}")

    def _backoff(self, c: Controller, action: Action, outcome: Outcome, generation: int) -> None:
        key = _retry_key(c, action)
        if outcome.ok:
            self._retry.pop(key, None)
            return
        spec = BackoffSpec.from_policy(self.ctx.policy()["reconcile"]["action_backoff"])
        state = self._retry.setdefault(key, _RetryState(Backoff(spec)))
        state.backoff.spec = spec
        delay = state.backoff.record_failure()
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        state.last_error = outcome.message
        state.not_before = self.ctx.clock.monotonic() + delay
        if outcome.permanent or state.backoff.exhausted:
            state.stalled_generation = generation
        res = self.ctx.status.resource(c.name, *action.resource.split("/", 1))
        if state.stalled_generation is not None:
            res.set_condition("Stalled", True, "RetriesExhausted" if not outcome.permanent
                              else "PermanentError",
                              f"{action.kind} failed {state.backoff.failures} time(s): "
                              f"{outcome.message}; waiting for a desired-state change",
                              self.ctx.clock.now())

    def _decision_chain(self, c: Controller, action: Action, generation: int, mode: str,
                        gate: str) -> list[str]:
        g = self.ctx.graph
        with self.ctx.store.transaction():
            resource = g.ensure("resource", action.resource)
            gen = g.ensure("generation", str(generation))
            mode_node = g.ensure("mode", mode)
            chain = g.record_chain(
                [("observation", f"{action.resource}: {action.reason}",
                  {"evidence": dict(action.evidence), "controller": c.name}),
                 ("decision", f"{action.kind} {action.resource}",
                  {"rule": action.reason, "gate": gate, "mode": mode, "generation": generation,
                   "action_key": action.key()})],
                context={"about": resource, "under_generation": gen, "under_mode": mode_node})
            cause = action.evidence.get("caused_by")
            if isinstance(cause, str):
                # asked for by another controller's decision (an intent): one chain back to
                # what that decision saw (a cause pruned by retention is left out)
                with contextlib.suppress(KeyError):
                    g.add_relation(cause, "led_to", chain[0])
            return chain

    def _record_outcome(self, c: Controller, action: Action, outcome: Outcome,
                        chain: list[str]) -> list[str]:
        g = self.ctx.graph
        with self.ctx.store.transaction():
            ids = g.record_chain([
                ("action", f"{action.kind} {action.resource}", {**action.as_dict()}),
                ("outcome", f"{'ok' if outcome.ok else 'failed'}: {outcome.message}",
                 outcome.as_dict())],
                context={"about": g.ensure("resource", action.resource)})
            g.add_relation(chain[-1], "chose", ids[0])
        run = self.ctx.status.controller(c.name)
        run.last_decisions[action.resource] = ids[-1]
        return ids


def _retry_key(c: Controller, action: Action) -> tuple[str, str]:
    """Back-off and Stalled are per (controller, resource) — or per what the controller's
    ``retry_key(action)`` names (healing: per resource and action kind, so that a failed
    restart does not hold back the alert that follows it)."""
    fn = getattr(c, "retry_key", None)
    return (c.name, fn(action) if callable(fn) else action.resource)


def _signature(action: Action, generation: int, mode: str, gate: str,
               outcome: Outcome) -> tuple[Any, ...] | None:
    """What makes a not-done decision "the same again"; None for one that did something."""
    details = outcome.details or {}
    if not (details.get("dry_run") or details.get("pending") or details.get("rejected")):
        return None
    return (action.key(), generation, mode, gate, outcome.ok, outcome.message,
            tuple(sorted((k, str(v)) for k, v in details.items())))
