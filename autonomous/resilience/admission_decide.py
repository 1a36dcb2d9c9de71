"""Admission, step 2: decide — admit, queue or shed — from the state observed now (the
throttler's readings and in-flight count, the queue's levels, survival's disabled paths),
without waiting or taking a slot. Pure with respect to its inputs: nothing is changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autonomous.resilience.admission_lag import lag_verdict
from autonomous.resilience.priority_queue import Priority, PriorityQueue
from autonomous.resilience.resource_throttler import ResourceThrottler

__all__ = ["Decision", "ahead_of", "decide", "no_room_for"]


@dataclass(frozen=True)
class Decision:
    action: str  # "admit" | "queue" | "shed"
    priority: Priority | None
    reason: str = ""
    retry_after: float | None = None
    lag_credit: float = 0.0  # the priority's error-diffusion credit after this request


def decide(adm: Mapping[str, Any], throttler: ResourceThrottler, queue: PriorityQueue,
           survival_disabled: tuple[str, ...], priority: Priority | None,
           path: str = "", *, lag_policy: Mapping[str, Any] | None = None,
           lag_seconds: float | None = None, lag_credit: float = 0.0) -> Decision:
    """The decision for one request (the caller holds the admission lock).

    Order, cheapest first: never-shed → admit; a survival-disabled path → shed; the measured
    event-loop lag (``lag_seconds``, observed by the caller) → shed its share of the
    priority's requests (:func:`admission_lag.lag_verdict`, never CRITICAL); a rate or
    resource gate for its priority → shed; a free slot and nobody it must not overtake →
    admit; a full queue with nothing worse to evict → shed; else queue. The returned
    ``lag_credit`` is the credit to carry to the priority's next request."""
    if priority is None:
        return Decision("admit", None, "never shed")
    retry = float(adm["shed_retry_after_seconds"])
    off = next((p for p in survival_disabled if path.startswith(p)), None)
    if off is not None:
        return Decision("shed", priority, f"{off} is disabled in survival mode", retry)
    credit = 0.0
    if lag_policy is not None:
        shed, credit, frac = lag_verdict(lag_policy, priority, lag_seconds, lag_credit)
        if shed:
            return Decision("shed", priority, f"event loop {1000 * (lag_seconds or 0):.1f} ms "
                            f"late: shedding {100 * frac:.0f} % of {priority.name}", retry,
                            credit)
    t = throttler.should_throttle(priority)
    if t.throttle:
        return Decision("shed", priority, t.reason, t.retry_after, credit)
    if not ahead_of(queue, priority) and throttler.has_capacity(priority):
        return Decision("admit", priority, "capacity free", lag_credit=credit)
    if len(queue) >= queue.max_depth and no_room_for(queue, priority):
        return Decision("shed", priority, "queue full", retry, credit)
    return Decision("queue", priority,
                    f"{throttler.in_flight} in flight, limit {throttler.limit}",
                    lag_credit=credit)


def ahead_of(queue: PriorityQueue, priority: Priority) -> int:
    """Waiters a new request must not overtake: CRITICAL waits only behind CRITICAL
    (it may take a reserved slot while others queue), the rest behind everyone."""
    if priority == Priority.CRITICAL:
        return len(queue._levels[Priority.CRITICAL])
    return len(queue)


def no_room_for(queue: PriorityQueue, priority: Priority) -> bool:
    """A full queue holds nothing worse than ``priority`` that could be evicted for it."""
    return all(not queue._levels[p] for p in Priority if p > priority)
