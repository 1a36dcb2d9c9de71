"""A bounded, asyncio-native priority queue with aging and lowest-first shedding.

Four levels, ``CRITICAL`` (0) … ``LOW`` (3). ``dequeue`` returns the item with the best
*effective* priority: its level minus one per ``aging_seconds`` waited (up to HIGH: aging
never competes with CRITICAL), first in first out among equals — so LOW is not starved under steady HIGH load.
When the queue is full, ``enqueue`` sheds the newest item of the worst level that is worse
than the newcomer; if there is none the newcomer itself is shed. ``reorder_on_emergency``
promotes items tagged critical and drops items whose tags survival mode disabled.

The queue itself is not thread-safe; callers that share it across threads hold their own lock
(``admission.Admission`` does).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.stats import percentiles

__all__ = ["EnqueueResult", "Priority", "PriorityQueue", "QueueItem"]


class Priority(IntEnum):
    CRITICAL = 0
    HIGH = 1
    MEDIUM = 2
    LOW = 3

    @classmethod
    def parse(cls, value: str | int | Priority) -> Priority:
        """``"high"``, ``"HIGH"``, ``1`` or ``Priority.HIGH`` → ``Priority.HIGH``."""
        if isinstance(value, Priority):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise ValueError(f"{value!r} is not a priority; allowed: "
                             f"{', '.join(p.name for p in cls)}") from None


@dataclass(eq=False)
class QueueItem:
    value: Any
    priority: Priority
    enqueued_at: float
    seq: int
    tags: frozenset[str] = field(default_factory=frozenset)
    shed_reason: str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    accepted: bool
    item: QueueItem
    shed: tuple[QueueItem, ...] = ()  # items dropped to make room (or the newcomer itself)


class PriorityQueue:
    """See the module docstring. ``max_depth`` bounds all levels together."""

    def __init__(self, *, max_depth: int, aging_seconds: float, clock: Clock,
                 stats_window: int = 1000) -> None:
        self.max_depth = max_depth
        self.aging_seconds = aging_seconds
        self.clock = clock
        self._levels: dict[Priority, deque[QueueItem]] = {p: deque() for p in Priority}
        self._seq = itertools.count()
        self._waits: dict[Priority, deque[float]] = {p: deque(maxlen=stats_window)
                                                     for p in Priority}
        self.shed_counts: dict[Priority, int] = {p: 0 for p in Priority}
        self.enqueued = 0
        self.dequeued = 0
        self._event = asyncio.Event()

    # -- configuration ---------------------------------------------------------------------
    def configure(self, *, max_depth: int, aging_seconds: float, stats_window: int) -> None:
        """Apply new limits (a policy edit); items already waiting stay."""
        self.max_depth, self.aging_seconds = max_depth, aging_seconds
        if stats_window != self._waits[Priority.LOW].maxlen:
            self._waits = {p: deque(w, maxlen=stats_window) for p, w in self._waits.items()}

    def __len__(self) -> int:
        return sum(len(q) for q in self._levels.values())

    # -- enqueue / dequeue -----------------------------------------------------------------
    def enqueue(self, value: Any, priority: Priority | str, *,
                tags: Iterable[str] = ()) -> EnqueueResult:
        """Add ``value``; when full, shed the newest item of the worst lower level (or refuse)."""
        prio = Priority.parse(priority)
        item = QueueItem(value, prio, self.clock.monotonic(), next(self._seq), frozenset(tags))
        shed: list[QueueItem] = []
        if len(self) >= self.max_depth:
            victim = self._victim_below(prio)
            if victim is None:
                item.shed_reason = "queue full"
                self.shed_counts[prio] += 1
                return EnqueueResult(False, item, (item,))
            self._levels[victim.priority].remove(victim)
            victim.shed_reason = f"queue full: shed for a {prio.name} item"
            self.shed_counts[victim.priority] += 1
            shed.append(victim)
        self._levels[prio].append(item)
        self.enqueued += 1
        self._event.set()
        return EnqueueResult(True, item, tuple(shed))

    def _victim_below(self, prio: Priority) -> QueueItem | None:
        for level in sorted(Priority, reverse=True):
            if level <= prio:
                return None
            if self._levels[level]:
                return self._levels[level][-1]
        return None

    def effective_priority(self, item: QueueItem, now: float | None = None) -> int:
        """Level minus one per ``aging_seconds`` waited. Aging lifts an item up to HIGH, never
        into CRITICAL: an old HIGH request must not delay a fresh CRITICAL one."""
        if item.priority == Priority.CRITICAL:
            return 0
        waited = (self.clock.monotonic() if now is None else now) - item.enqueued_at
        return max(1, int(item.priority) - int(waited // self.aging_seconds))

    def dequeue_nowait(self) -> QueueItem | None:
        """The waiting item with the best effective priority (FIFO among equals), or None."""
        now = self.clock.monotonic()
        heads = [q[0] for q in self._levels.values() if q]
        if not heads:
            return None
        best = min(heads, key=lambda it: (self.effective_priority(it, now), it.seq))
        self._levels[best.priority].popleft()
        self._waits[best.priority].append(now - best.enqueued_at)
        self.dequeued += 1
        if not len(self):
            self._event.clear()
        return best

    async def dequeue(self, timeout: float | None = None) -> QueueItem | None:
        """Wait for an item (up to ``timeout`` seconds of real time); None on timeout."""
        while True:
            item = self.dequeue_nowait()
            if item is not None:
                return item
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return None

    def remove(self, item: QueueItem) -> bool:
        """Take a waiting item out (its waiter gave up); False when it is no longer queued."""
        try:
            self._levels[item.priority].remove(item)
        except ValueError:
            return False
        return True

    def shed_lowest(self, reason: str) -> QueueItem | None:
        """Drop the newest item of the lowest non-empty level (overload control)."""
        victim = self._victim_below(Priority.CRITICAL)
        if victim is None:
            return None
        self._levels[victim.priority].remove(victim)
        victim.shed_reason = reason
        self.shed_counts[victim.priority] += 1
        return victim

    # -- emergency -------------------------------------------------------------------------
    def reorder_on_emergency(self, *, critical_tags: Iterable[str] = (),
                             disabled_tags: Iterable[str] = ()) -> dict[str, Any]:
        """Promote items tagged with any of ``critical_tags`` to CRITICAL (keeping their order)
        and drop items tagged with any of ``disabled_tags`` (features survival mode turned off).
        Returns ``{"promoted": n, "dropped": [items]}``; dropped items carry a shed reason."""
        crit, disabled = frozenset(critical_tags), frozenset(disabled_tags)
        promoted, dropped = [], []
        for level in list(Priority):
            keep: deque[QueueItem] = deque()
            for it in self._levels[level]:
                if it.tags & disabled:
                    it.shed_reason = f"disabled in survival: {', '.join(sorted(it.tags & disabled))}"
                    self.shed_counts[it.priority] += 1
                    dropped.append(it)
                elif it.tags & crit and level != Priority.CRITICAL:
                    it.priority = Priority.CRITICAL
                    promoted.append(it)
                else:
                    keep.append(it)
            self._levels[level] = keep
        merged = sorted(list(self._levels[Priority.CRITICAL]) + promoted, key=lambda i: i.seq)
        self._levels[Priority.CRITICAL] = deque(merged)
        return {"promoted": len(promoted), "dropped": dropped}

    # -- stats -----------------------------------------------------------------------------
    def get_queue_stats(self) -> dict[str, Any]:
        """Depth, wait-time percentiles (seconds) and shed counts per level, plus totals."""
        now = self.clock.monotonic()
        levels = {}
        for p in Priority:
            q = self._levels[p]
            levels[p.name] = {
                "depth": len(q),
                "oldest_wait_seconds": (now - q[0].enqueued_at) if q else None,
                "wait_seconds": percentiles(self._waits[p]),
                "shed": self.shed_counts[p],
            }
        return {"depth": len(self), "max_depth": self.max_depth,
                "aging_seconds": self.aging_seconds, "enqueued": self.enqueued,
                "dequeued": self.dequeued, "shed": sum(self.shed_counts.values()),
                "levels": levels}
