"""Admission, step 2: decide — admit, queue or shed — from the state observed now (the
throttler's readings and in-flight count, the queue's levels, survival's disabled paths),
without waiting or taking a slot. Pure with respect to its inputs: nothing is changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autonomous.resilience.priority_queue import Priority, PriorityQueue
from autonomous.resilience.resource_throttler import ResourceThrottler

__all__ = ["Decision", "ahead_of", "decide", "no_room_for"]


@dataclass(frozen=True)
class Decision:
    action: str  # "admit" | "queue" | "shed"
    priority: Priority | None
    reason: str = ""
    retry_after: float | None = None


def decide(adm: Mapping[str, Any], throttler: ResourceThrottler, queue: PriorityQueue,
           survival_disabled: tuple[str, ...], priority: Priority | None,
           path: str = "") -> Decision:
    """The decision for one request (the caller holds the admission lock).

    Order, cheapest first: never-shed → admit; a survival-disabled path → shed; a rate or
    resource gate for its priority → shed; a free slot and nobody it must not overtake →
    admit; a full queue with nothing worse to evict → shed; else queue."""
    if priority is None:
        return Decision("admit", None, "never shed")
    retry = float(adm["shed_retry_after_seconds"])
    off = next((p for p in survival_disabled if path.startswith(p)), None)
    if off is not None:
        return Decision("shed", priority, f"{off} is disabled in survival mode", retry)
    t = throttler.should_throttle(priority)
    if t.throttle:
        return Decision("shed", priority, t.reason, t.retry_after)
    if not ahead_of(queue, priority) and throttler.has_capacity(priority):
        return Decision("admit", priority, "capacity free")
    if len(queue) >= queue.max_depth and no_room_for(queue, priority):
        return Decision("shed", priority, "queue full", retry)
    return Decision("queue", priority,
                    f"{throttler.in_flight} in flight, limit {throttler.limit}")


def ahead_of(queue: PriorityQueue, priority: Priority) -> int:
    """Waiters a new request must not overtake: CRITICAL waits only behind CRITICAL
    (it may take a reserved slot while others queue), the rest behind everyone."""
    if priority == Priority.CRITICAL:
        return len(queue._levels[Priority.CRITICAL])
    return len(queue)


def no_room_for(queue: PriorityQueue, priority: Priority) -> bool:
    """A full queue holds nothing worse than ``priority`` that could be evicted for it."""
    return all(not queue._levels[p] for p in Priority if p > priority)
