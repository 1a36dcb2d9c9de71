"""Admission control: admit, queue or shed each request by priority.

The core, :class:`Admission`, is framework-neutral and thread-safe:

* ``classify(path, headers)`` → a :class:`Priority`, or None for never-shed paths (health
  probes, ``/metrics``, the operator's governance / approval / survival endpoints);
* ``decide(priority, path)`` → a :class:`Decision` (``admit`` / ``queue`` / ``shed`` with an
  exact ``retry_after``) without waiting;
* ``acquire(priority, path)`` (async) and ``acquire_blocking`` (threads) carry the decision
  out: a queued request waits for a slot in the :class:`PriorityQueue` up to its priority's
  ``max_wait_seconds``; both raise :class:`Throttled` when shed; ``release(ticket)`` frees the
  slot, feeds AIMD and wakes the best waiter.

:class:`AdmissionMiddleware` wraps an ASGI app with it and answers shed requests ``429`` with
``Retry-After``; ``install(app, ctx)`` adds it to a FastAPI app. A stdlib ``http.server``
service calls ``admission_for_policy(...)`` once and ``with admission.guard(path, headers):``
around each request (see :meth:`Admission.guard`).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock, SystemClock
from autonomous.core.errors import Throttled
from autonomous.resilience.priority_queue import Priority, PriorityQueue, QueueItem
from autonomous.resilience.resource_throttler import (
    ResourceReading,
    ResourceThrottler,
    context_reader,
    read_system_resources,
)

__all__ = [
    "Admission",
    "AdmissionMiddleware",
    "Decision",
    "Ticket",
    "admission_for_policy",
    "install",
]


@dataclass(frozen=True)
class Decision:
    action: str  # "admit" | "queue" | "shed"
    priority: Priority | None
    reason: str = ""
    retry_after: float | None = None


@dataclass(eq=False)
class Ticket:
    priority: Priority | None
    started: float
    counted: bool  # holds an in-flight slot


@dataclass(eq=False)
class _Waiter:
    """A queued request: ``grant``/``shed`` wake it, from any thread."""

    wake: Callable[[], object]
    granted: bool = False
    shed_reason: str | None = None
    done: bool = False
    item: QueueItem | None = field(default=None, repr=False)


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
        self.counts: dict[str, int] = {"admitted": 0, "queued": 0, "shed": 0, "bypassed": 0}
        self.survival_disabled: tuple[str, ...] = ()  # path prefixes shed in survival
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

    # -- classification --------------------------------------------------------------------
    def classify(self, path: str, headers: Mapping[str, str] | None = None,
                 method: str = "") -> Priority | None:
        """Priority of a request; None for never-shed paths. A header beats the route map.

        A ``never_shed`` entry is a path prefix (any method) or ``"GET <prefix>"``: reads
        only (GET and HEAD), so observing status, alerts and health is never shed while
        their mutating routes are."""
        adm = self.policy["admission"]
        if any(_never_shed(rule, path, method.upper()) for rule in adm["never_shed"]):
            return None
        value = (headers or {}).get(adm["priority_header"].lower())
        if value:
            try:
                return Priority.parse(value)
            except ValueError:
                pass  # an unknown header value falls back to the route map
        best = max((r for r in adm["routes"] if path.startswith(r["prefix"])),
                   key=lambda r: len(r["prefix"]), default=None)
        return Priority.parse(best["priority"] if best else adm["default_priority"])

    # -- decisions -------------------------------------------------------------------------
    def decide(self, priority: Priority | None, path: str = "") -> Decision:
        """Admit, queue or shed, without waiting or taking a slot."""
        if priority is None:
            return Decision("admit", None, "never shed")
        off = next((p for p in self.survival_disabled if path.startswith(p)), None)
        if off is not None:
            return Decision("shed", priority, f"{off} is disabled in survival mode",
                            self._queue_retry_after())
        t = self.throttler.should_throttle(priority)
        if t.throttle:
            return Decision("shed", priority, t.reason, t.retry_after)
        with self._lock:
            if not self._ahead_of(priority) and self.throttler.has_capacity(priority):
                return Decision("admit", priority, "capacity free")
            if len(self.queue) >= self.queue.max_depth and self._no_room_for(priority):
                return Decision("shed", priority, "queue full", self._queue_retry_after())
            return Decision("queue", priority, f"{self.throttler.in_flight} in flight, limit "
                            f"{self.throttler.limit}")

    def _ahead_of(self, priority: Priority) -> int:
        """Waiters a new request must not overtake: CRITICAL waits only behind CRITICAL
        (it may take a reserved slot while others queue), the rest behind everyone."""
        if priority == Priority.CRITICAL:
            return len(self.queue._levels[Priority.CRITICAL])
        return len(self.queue)

    def _no_room_for(self, priority: Priority) -> bool:
        return all(not self.queue._levels[p] for p in Priority if p > priority)

    def _queue_retry_after(self) -> float:
        return float(self.policy["admission"]["shed_retry_after_seconds"])

    def _shed(self, d: Decision) -> Throttled:
        with self._lock:
            self.counts["shed"] += 1
        return Throttled(f"{d.priority.name if d.priority else 'request'} shed: {d.reason}",
                         d.retry_after or self._queue_retry_after())

    def _try_admit(self, priority: Priority | None) -> Ticket | None:
        if priority is None:
            with self._lock:
                self.counts["bypassed"] += 1
            return Ticket(None, self.clock.monotonic(), counted=False)
        with self._lock:
            if not self._ahead_of(priority) and self.throttler.try_acquire(priority):
                self.counts["admitted"] += 1
                return Ticket(priority, self.clock.monotonic(), counted=True)
        return None

    def _enqueue(self, priority: Priority, waiter: _Waiter, path: str) -> None:
        with self._lock:
            self.counts["queued"] += 1
            tags = (path,) if path else ()
            res = self.queue.enqueue(waiter, priority, tags=tags)
            waiter.item = res.item
            for victim in res.shed:
                self._wake_shed(victim)
            self._dispatch()

    def _wake_shed(self, item: QueueItem) -> None:
        w: _Waiter = item.value
        w.shed_reason, w.done = item.shed_reason or "shed", True
        w.wake()

    def _dispatch(self) -> None:
        """Grant free slots to the best waiters (caller holds the lock); a slot reserved
        for CRITICAL goes only to a waiting CRITICAL request."""
        while self.throttler.has_capacity():
            if not (self.throttler.has_capacity(Priority.LOW)
                    or self.queue._levels[Priority.CRITICAL]):
                return
            item = self.queue.dequeue_nowait()  # CRITICAL first: aging stops at HIGH
            if item is None:
                return
            w: _Waiter = item.value
            self.throttler.force_acquire(item.priority)
            w.granted, w.done = True, True
            self.counts["admitted"] += 1
            w.wake()

    def _give_up(self, priority: Priority, waiter: _Waiter) -> Ticket | None:
        """A wait ended (timeout / cancel): leave the queue, or keep a slot granted meanwhile."""
        with self._lock:
            if waiter.granted:
                return Ticket(_slot_priority(waiter, priority), self.clock.monotonic(),
                              counted=True)
            if waiter.item is not None and self.queue.remove(waiter.item):
                self.queue.shed_counts[priority] += 1
            waiter.done = True
            return None

    # -- async -----------------------------------------------------------------------------
    async def acquire(self, priority: Priority | None, path: str = "") -> Ticket:
        """Admit now, or wait in the queue; raises Throttled when shed."""
        ticket = self._admit_now(priority, path)
        if ticket is not None:
            return ticket
        assert priority is not None  # never-shed requests were admitted above
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(lambda: loop.call_soon_threadsafe(_set_once, fut))
        self._enqueue(priority, waiter, path)
        wait = self.policy["admission"]["max_wait_seconds"][priority.name]
        try:
            await asyncio.wait_for(fut, wait)
        except asyncio.CancelledError:
            ticket = self._give_up(priority, waiter)
            if ticket is not None:
                self.release(ticket)
            raise
        except TimeoutError:
            pass  # shed below, outside the handler (no chained TimeoutError)
        else:
            return self._granted(priority, waiter)
        return self._timed_out(priority, waiter, wait)

    def _admit_now(self, priority: Priority | None, path: str) -> Ticket | None:
        """Fresh readings, then shed (raises Throttled) or admit at once; None: it must wait
        in the queue."""
        self.refresh()
        d = self.decide(priority, path)
        if d.action == "shed":
            raise self._shed(d)
        return self._try_admit(priority)

    def _timed_out(self, priority: Priority, waiter: _Waiter, wait: float) -> Ticket:
        """Out of the queue after ``wait`` seconds: the slot granted meanwhile, or shed."""
        ticket = self._give_up(priority, waiter)
        if ticket is not None:
            return ticket
        raise self._shed(Decision("shed", priority, f"waited {wait:g} s in queue",
                                  self._queue_retry_after()))

    def _granted(self, priority: Priority, waiter: _Waiter) -> Ticket:
        if waiter.granted:
            return Ticket(_slot_priority(waiter, priority), self.clock.monotonic(),
                          counted=True)
        raise self._shed(Decision("shed", priority, waiter.shed_reason or "shed",
                                  self._queue_retry_after()))

    # -- threads ---------------------------------------------------------------------------
    def acquire_blocking(self, priority: Priority | None, path: str = "") -> Ticket:
        """Same as ``acquire`` for a thread-per-request server; raises Throttled when shed."""
        ticket = self._admit_now(priority, path)
        if ticket is not None:
            return ticket
        assert priority is not None
        event = threading.Event()
        waiter = _Waiter(event.set)
        self._enqueue(priority, waiter, path)
        wait = self.policy["admission"]["max_wait_seconds"][priority.name]
        if not event.wait(wait):
            return self._timed_out(priority, waiter, wait)
        return self._granted(priority, waiter)

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
        with self._lock:
            self._dispatch()

    def reorder_on_emergency(self, *, critical_prefixes: tuple[str, ...] = (),
                             disabled_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
        """Survival: from now on shed paths under ``disabled_prefixes``; promote waiting
        requests under ``critical_prefixes`` to CRITICAL and shed waiting requests under
        ``disabled_prefixes`` at once. Empty prefixes undo it (survival exited)."""
        with self._lock:
            self.survival_disabled = tuple(disabled_prefixes)
            waiting = {t for q in self.queue._levels.values() for it in q for t in it.tags}
            crit = {t for t in waiting if t.startswith(tuple(critical_prefixes) or ("\0",))}
            off = {t for t in waiting if t.startswith(tuple(disabled_prefixes) or ("\0",))}
            res = self.queue.reorder_on_emergency(critical_tags=crit, disabled_tags=off)
            for item in res["dropped"]:
                self._wake_shed(item)
            return {"promoted": res["promoted"], "dropped": len(res["dropped"])}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"counts": dict(self.counts), "queue": self.queue.get_queue_stats(),
                    "throttling": self.throttler.get_stats()}


def _slot_priority(waiter: _Waiter, priority: Priority) -> Priority:
    """The priority a granted waiter's slot was taken with (survival may have promoted it)."""
    return waiter.item.priority if waiter.item is not None else priority


def _never_shed(rule: str, path: str, method: str) -> bool:
    verb, _, prefix = rule.partition(" ") if " " in rule else ("", "", rule)
    if verb and not (method == verb.upper() or (verb.upper() == "GET" and method == "HEAD")):
        return False
    return path == prefix or path.startswith(prefix)


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AdmissionMiddleware:
    """Pure ASGI middleware: classify, acquire (maybe wait), run the app, release; a shed
    request gets ``429`` with ``Retry-After`` (whole seconds, rounded up) and a JSON body with
    the exact ``retry_after_seconds``."""

    def __init__(self, app: Any, admission: Admission,
                 routed: Callable[[dict], bool] | None = None) -> None:
        self.app = app
        self.admission = admission
        self.routed = routed

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        path = scope.get("path", "/")
        if self.routed is not None and not self.routed(scope):
            await self.app(scope, receive, send)  # route first: an unknown path is a 404
            return
        priority = self.admission.classify(path, headers, scope.get("method", ""))
        try:
            ticket = await self.admission.acquire(priority, path)
        except Throttled as exc:
            await _send_429(send, exc)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release(ticket)


async def _send_429(send: Callable, exc: Throttled) -> None:
    body = json.dumps({"detail": str(exc), "error": "Throttled",
                       "retry_after_seconds": round(exc.retry_after, 3)}).encode()
    await send({"type": "http.response.start", "status": 429, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode())]})
    await send({"type": "http.response.body", "body": body})


def admission_for_policy(policy_source: Callable[[], dict[str, Any]], *,
                         clock: Clock | None = None,
                         reader: Callable[[], ResourceReading] = read_system_resources
                         ) -> Admission:
    """An :class:`Admission` for any server (the sample stack passes a loader of its
    ``resilience`` policy section)."""
    return Admission(policy_source, clock=clock, reader=reader)


def install(app: Any, ctx: Any, *,
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


_ROUTED_CACHE = 4096


def routes_match(app: Any, scope: dict, cache: dict[str, bool] | None = None) -> bool:
    """Whether any route (or mount) of ``app`` matches the request's path (a method mismatch
    counts: it is a route, answered 405). Unrouted requests skip admission: route first,
    shed after. ``cache``: path → answer (the method does not change it; the route table is
    fixed once the app serves, and scanning it per request cost a twentieth of a request)."""
    from starlette.routing import Match

    routes = app.router.routes
    path = scope.get("path", "/")
    key = f"{len(routes)} {path}"  # a router included since invalidates the answer
    if cache is not None and key in cache:
        return cache[key]
    got = any(route.matches(scope)[0] != Match.NONE for route in routes)
    if cache is not None:
        if len(cache) >= _ROUTED_CACHE:
            cache.clear()
        cache[key] = got
    return got
