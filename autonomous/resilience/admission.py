"""Admission control: admit, queue or shed each request by priority.

Split by responsibility: :mod:`admission_classify` (path + headers → priority),
:mod:`admission_decide` (admit / queue / shed from what is observed now),
:mod:`admission_lag` (the serving event loop's measured lag, and the share of each sheddable
priority to shed at it), :mod:`admission_queue` (waiters and grants),
:mod:`admission_middleware` (ASGI, 429). This
module holds the framework-neutral, thread-safe core, :class:`Admission`:

* ``classify(path, headers)`` → a :class:`Priority`, or None for never-shed paths (health
  probes, ``/metrics``, the operator's governance / approval / survival endpoints);
* ``decide(priority, path)`` → a :class:`Decision` (``admit`` / ``queue`` / ``shed`` with an
  exact ``retry_after``) without waiting;
* ``acquire(priority, path)`` (async) and ``acquire_blocking`` (threads) carry the decision
  out: a queued request waits for a slot in the :class:`PriorityQueue` up to its priority's
  ``max_wait_seconds``; both raise :class:`Throttled` when shed; ``release(ticket)`` frees the
  slot, feeds AIMD and wakes the best waiter.

``install(app, ctx)`` adds :class:`AdmissionMiddleware` to a FastAPI app. A stdlib
``http.server`` service calls ``admission_for_policy(...)`` once and
``with admission.guard(path, headers):`` around each request (see :meth:`Admission.guard`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from autonomous.core.clock import Clock, SystemClock
from autonomous.core.errors import Throttled
from autonomous.resilience import admission_classify, admission_decide
from autonomous.resilience.admission_decide import Decision
from autonomous.resilience.admission_lag import LagSampler
from autonomous.resilience.admission_middleware import AdmissionMiddleware, routes_match
from autonomous.resilience.admission_queue import Ticket, WaitQueue, Waiter
from autonomous.resilience.priority_queue import Priority, PriorityQueue
from autonomous.resilience.resource_throttler import (
    ResourceReading,
    ResourceThrottler,
    context_reader,
    read_system_resources,
)

if TYPE_CHECKING:
    from autonomous.context import OperatorContext

__all__ = [
    "Admission",
    "AdmissionMiddleware",
    "Decision",
    "Ticket",
    "admission_for_policy",
    "install",
    "routes_match",
]


class Admission:
    """See the module docstring. ``policy_source()`` returns the ``resilience`` section."""

    def __init__(self, policy_source: Callable[[], dict[str, Any]], *, clock: Clock | None = None,
                 reader: Callable[[], ResourceReading] = read_system_resources) -> None:
        self.clock = clock or SystemClock()
        self._source = policy_source
        self._lock = threading.RLock()
        self.policy = policy_source()
        q = self.policy["queue"]
        self.queue = PriorityQueue(max_depth=q["max_depth"], aging_seconds=q["aging_seconds"],
                                   clock=self.clock, stats_window=q["stats_window"])
        self.throttler = ResourceThrottler(self.policy, clock=self.clock, reader=reader)
        self._refreshed = self.clock.monotonic()
        self.counts: dict[str, int] = {"admitted": 0, "queued": 0, "shed": 0, "bypassed": 0,
                                     "shed_lag": 0}
        self.waiting = WaitQueue(self.queue, self.throttler, self.clock, self._lock,
                                 self.counts)
        self.survival_disabled: tuple[str, ...] = ()  # path prefixes shed in survival
        self.lag = LagSampler(self.policy["loop_lag"])
        self._classify = admission_classify.ClassifyCache()
        self._lag_credit: dict[Priority, float] = {}
        self.throttler.reading()  # first reading now (imports), not on a request

    # -- policy ----------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Re-read the policy in force, at most every ``policy_refresh_seconds``."""
        now = self.clock.monotonic()
        if not force and now - self._refreshed < self.policy["admission"][
                "policy_refresh_seconds"]:
            return
        self._refreshed = now
        try:
            policy = self._source()
        except LookupError:
            return  # no generation in force: keep the last one
        with self._lock:
            self.policy = policy
            q = policy["queue"]
            self.queue.configure(max_depth=q["max_depth"], aging_seconds=q["aging_seconds"],
                                 stats_window=q["stats_window"])
            self.throttler.update_policy(policy)
            self.lag.configure(policy["loop_lag"])

    # -- classify / decide -----------------------------------------------------------------
    def classify(self, path: str, headers: Mapping[str, str] | None = None,
                 method: str = "") -> Priority | None:
        """Priority of a request; None for never-shed paths (see
        :func:`admission_classify.classify`)."""
        return self._classify.classify(self.policy["admission"], path, headers, method)

    def decide(self, priority: Priority | None, path: str = "",
               lag_seconds: float | None = None) -> Decision:
        """Admit, queue or shed, without waiting or taking a slot (``lag_seconds``: the
        serving loop's measured lag, None when not measured)."""
        with self._lock:
            credit = self._lag_credit.get(priority, 0.0) if priority is not None else 0.0
            return admission_decide.decide(
                self.policy["admission"], self.throttler, self.queue, self.survival_disabled,
                priority, path, lag_policy=self.policy["loop_lag"], lag_seconds=lag_seconds,
                lag_credit=credit)

    def _retry_after(self) -> float:
        return float(self.policy["admission"]["shed_retry_after_seconds"])

    def _shed(self, d: Decision) -> Throttled:
        with self._lock:
            self.counts["shed"] += 1
        return Throttled(f"{d.priority.name if d.priority else 'request'} shed: {d.reason}",
                         d.retry_after or self._retry_after())

    def _admit_now(self, priority: Priority | None, path: str,
                   lag_seconds: float | None = None) -> Ticket | None:
        """Fresh readings, then shed (raises Throttled) or admit at once; None: it must wait
        in the queue."""
        self.refresh()
        d = self.decide(priority, path, lag_seconds)
        if priority is not None:
            with self._lock:
                self._lag_credit[priority] = d.lag_credit
                if d.action == "shed" and d.reason.startswith("event loop"):
                    self.counts["shed_lag"] += 1
        if d.action == "shed":
            raise self._shed(d)
        if priority is None:
            with self._lock:
                self.counts["bypassed"] += 1
            return Ticket(None, self.clock.monotonic(), counted=False)
        with self._lock:
            if not admission_decide.ahead_of(self.queue, priority) \
                    and self.throttler.try_acquire(priority):
                self.counts["admitted"] += 1
                return Ticket(priority, self.clock.monotonic(), counted=True)
        return None

    # -- async -----------------------------------------------------------------------------
    async def acquire(self, priority: Priority | None, path: str = "") -> Ticket:
        """Admit now, or wait in the queue; raises Throttled when shed. Runs on the serving
        loop, whose lag it samples (:class:`LagSampler`) and decides on."""
        lag = self.lag.touch()
        ticket = self._admit_now(priority, path, lag)
        if ticket is not None:
            return ticket
        assert priority is not None  # never-shed requests were admitted above
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        waiter = Waiter(lambda: _wake(loop, fut))
        self.waiting.enqueue(priority, waiter, path)
        try:
            return await self._wait(priority, waiter, fut)
        finally:
            waiter.item = None  # out of the queue by now: no waiter <-> item cycle left

    async def _wait(self, priority: Priority, waiter: Waiter, fut: asyncio.Future[None]
                    ) -> Ticket:
        wait = self.policy["admission"]["max_wait_seconds"][priority.name]
        try:
            await asyncio.wait_for(fut, wait)
        except asyncio.CancelledError:
            ticket = self.waiting.give_up(priority, waiter)
            if ticket is not None:
                self.release(ticket)
            raise
        except TimeoutError:
            pass  # shed below, outside the handler (no chained TimeoutError)
        else:
            return self._granted(priority, waiter)
        return self._timed_out(priority, waiter, wait)

    def _timed_out(self, priority: Priority, waiter: Waiter, wait: float) -> Ticket:
        """Out of the queue after ``wait`` seconds: the slot granted meanwhile, or shed."""
        ticket = self.waiting.give_up(priority, waiter)
        if ticket is not None:
            return ticket
        raise self._shed(Decision("shed", priority, f"waited {wait:g} s in queue",
                                  self._retry_after()))

    def _granted(self, priority: Priority, waiter: Waiter) -> Ticket:
        if waiter.granted:
            return Ticket(waiter.slot_priority(priority), self.clock.monotonic(), counted=True)
        raise self._shed(Decision("shed", priority, waiter.shed_reason or "shed",
                                  self._retry_after()))

    # -- threads ---------------------------------------------------------------------------
    def acquire_blocking(self, priority: Priority | None, path: str = "") -> Ticket:
        """Same as ``acquire`` for a thread-per-request server; raises Throttled when shed."""
        ticket = self._admit_now(priority, path)
        if ticket is not None:
            return ticket
        assert priority is not None
        event = threading.Event()
        waiter = Waiter(event.set)
        self.waiting.enqueue(priority, waiter, path)
        wait = self.policy["admission"]["max_wait_seconds"][priority.name]
        try:
            if not event.wait(wait):
                return self._timed_out(priority, waiter, wait)
            return self._granted(priority, waiter)
        finally:
            waiter.item = None

    @contextmanager
    def guard(self, path: str, headers: Mapping[str, str] | None = None) -> Iterator[Ticket]:
        """``with admission.guard(path, headers):`` around a request handled in a thread.
        Raises Throttled (``.retry_after``) before the body runs when the request is shed;
        header names must be lower case."""
        ticket = self.acquire_blocking(self.classify(path, headers), path)
        try:
            yield ticket
        finally:
            self.release(ticket)

    # -- release / stats -------------------------------------------------------------------
    def release(self, ticket: Ticket) -> None:
        """Free the ticket's slot, record its latency and wake the best waiter."""
        if not ticket.counted:
            return
        ticket.counted = False
        self.throttler.release(self.clock.monotonic() - ticket.started, ticket.priority)
        self.waiting.dispatch()

    def reorder_on_emergency(self, *, critical_prefixes: tuple[str, ...] = (),
                             disabled_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
        """Survival: from now on shed paths under ``disabled_prefixes``; promote waiting
        requests under ``critical_prefixes`` to CRITICAL and shed waiting requests under
        ``disabled_prefixes`` at once. Empty prefixes undo it (survival exited)."""
        with self._lock:
            self.survival_disabled = tuple(disabled_prefixes)
            return self.waiting.reorder(tuple(critical_prefixes), tuple(disabled_prefixes))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "queue": self.queue.get_queue_stats(),
                    "throttling": self.throttler.get_stats(), "loop_lag": self.lag.stats()}


def _wake(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    """Wake a waiter from any thread: on its own loop without the self-pipe write that
    ``call_soon_threadsafe`` costs (a grant is usually made by a release on that loop)."""
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        loop.call_soon(_set_once, fut)
    else:
        loop.call_soon_threadsafe(_set_once, fut)


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def admission_for_policy(policy_source: Callable[[], dict[str, Any]], *,
                         clock: Clock | None = None,
                         reader: Callable[[], ResourceReading] = read_system_resources
                         ) -> Admission:
    """An :class:`Admission` for any server (the sample stack passes a loader of its
    ``resilience`` policy section)."""
    return Admission(policy_source, clock=clock, reader=reader)


def install(app: Any, ctx: OperatorContext, *,
            reader: Callable[[], ResourceReading] | None = None) -> Admission:
    """Add admission control to ``app`` (call from the app factory, before it starts) and
    register it as ``ctx.subsystems["admission"]`` so the resilience API can report it.
    Installing again on the same app only swaps the resource reader (tests use this)."""
    existing = ctx.subsystems.get("admission")
    admission = existing or Admission(lambda: ctx.policy()["resilience"], clock=ctx.clock,
                                      reader=reader or context_reader(ctx))
    if existing is not None and reader is not None:
        admission.throttler.set_reader(reader)
    ctx.subsystems["admission"] = admission
    if not any(m.cls is AdmissionMiddleware for m in getattr(app, "user_middleware", [])):
        cache: dict[str, bool] = {}
        app.add_middleware(AdmissionMiddleware, admission=admission,
                           routed=lambda scope: routes_match(app, scope, cache))
    return admission
