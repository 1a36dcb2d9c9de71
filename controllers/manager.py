"""Runs every controller: on its interval (with jitter), on the events it watches, on a new
generation or mode, and on API triggers. One controller raising never stops the others.

Each planned action goes through ``controllers.execution`` (governance gate, per-resource
backoff, knowledge graph); the manager only schedules.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from autonomous.context import OperatorContext
from autonomous.core.aio import wait_or_timeout
from autonomous.core.clock import snap_delay
from controllers.base import Controller, Outcome
from controllers.execution import Executor

__all__ = ["ControllerManager"]

log = logging.getLogger("atlas.manager")

ALWAYS = ("desired.generation", "governance.mode")


class ControllerManager:
    def __init__(self, ctx: OperatorContext, controllers: list[Controller],
                 rng: random.Random | None = None) -> None:
        self.ctx = ctx
        self.controllers = controllers
        self.executor = Executor(ctx)
        self.rng = rng or random.Random()
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._requeue: dict[str, float] = {}
        self._stopping = False

    async def start(self) -> None:
        for c in self.controllers:
            self._wake[c.name] = asyncio.Event()
            self.ctx.triggers[c.name] = self._wake[c.name].set
            self.ctx.status.controller(c.name).enabled = True
            await c.start()
        for c in self.controllers:
            self._tasks.append(asyncio.create_task(self._loop(c), name=f"ctl-{c.name}"))
            sub = self.ctx.bus.subscribe(*(tuple(c.watches) + ALWAYS))
            self._tasks.append(asyncio.create_task(self._relay(c, sub), name=f"watch-{c.name}"))

    async def stop(self) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for c in reversed(self.controllers):
            try:
                async with c.lock:
                    await c.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("controller %s failed to stop", c.name)

    def trigger(self, name: str) -> None:
        self._wake[name].set()

    async def _relay(self, c: Controller, sub: Any) -> None:
        while True:
            await sub.get()
            self._wake[c.name].set()

    def _interval(self, c: Controller) -> float | None:
        """Seconds to the next periodic pass; None before a generation is in force (nothing
        to reconcile: a new generation wakes every controller). The jittered interval ends on
        the nearest second of the one tick grid, so controllers wake with the probes."""
        gen = self.ctx.desired.current
        if gen is None:
            return None
        pol = self.ctx.policy()["reconcile"]
        settings = gen.tree.config.controllers.get(c.subsystem)
        base = settings.interval_seconds if settings is not None else \
            pol["default_interval_seconds"]
        jitter = pol["interval_jitter"]
        return snap_delay(self.ctx.clock,
                          max(0.01, base * (1 + self.rng.uniform(-jitter, jitter))))

    async def _loop(self, c: Controller) -> None:
        wake = self._wake[c.name]
        while True:
            await self.reconcile(c)
            delay = self._interval(c)
            requeue = self._requeue.pop(c.name, None)
            if requeue is not None:
                delay = requeue if delay is None else min(delay, requeue)
            await wait_or_timeout(wake.wait(), delay)
            if self._stopping:
                return
            wake.clear()

    async def reconcile(self, c: Controller) -> list[Outcome]:
        """One observe → diff → act pass. Errors are recorded, never raised."""
        run = self.ctx.status.controller(c.name)
        gen = self.ctx.desired.current
        if gen is None:
            return []
        async with c.lock:
            t0 = time.perf_counter()
            outcomes: list[Outcome] = []
            try:
                desired = c.desired()
                observed = await c.observe()
                actions = c.diff(desired, observed)
                for action in actions:
                    outcomes.append(await self.executor.execute(c, action, gen.number))
                requeue = getattr(c, "requeue_after", None)
                if callable(requeue):
                    after = requeue(desired, observed)
                    if after is not None:
                        self._requeue[c.name] = after
                retry = self.executor.next_retry(c.name)
                if retry is not None:
                    self._requeue[c.name] = min(retry, self._requeue.get(c.name, retry))
                c.report(desired, await c.observe() if actions else observed, outcomes)
                run.last_error = None
            except Exception as exc:  # noqa: BLE001 - one controller never stops the others
                run.errors += 1
                run.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("controller %s reconcile failed", c.name)
            run.runs += 1
            run.last_run_at = self.ctx.clock.now()
            run.last_duration_ms = round((time.perf_counter() - t0) * 1000, 3)
            if outcomes:
                run.last_actions = [{**o.action.as_dict(), "outcome": o.as_dict()}
                                    for o in outcomes][-20:]
            return outcomes
