"""What the healer remembers per service between incidents: restart budget, crash-loop phase,
human overrides, active degradations and fallbacks.

Phases (like Kubernetes' CrashLoopBackOff, but tunable and never giving up for good):

    normal ──(restart budget exceeded)──► backoff ──(crash-loop tries exhausted)──► isolated
      ▲                                     │  growing, jittered, capped delay       │
      └──────────── proven healthy ◄────────┴──── slow periodic retry ◄──────────────┘

The persisted part (phase, tries, next try, overrides, degraded flags, fallback, an isolation
due) is written to ``healing_service_state`` so an operator restart keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from autonomous.core.clock import Clock, iso
from autonomous.self_healing.verify import Verdict, Watch
from autonomous.store import Store

__all__ = ["PHASES", "ServiceState", "StateStore", "Trying"]

PHASES = ("normal", "backoff", "isolated")


@dataclass
class Trying:
    """A crash-loop try in flight: started by one reconcile pass, its verification observed
    on later ones (``watch``, judged by ``verify.judge``) until a verdict settles it."""

    was: str  # the phase it was made in
    attempt: int
    on_failure: str  # what its failure leads to, planned with it: backoff | isolate
    next_delay: float | None  # the planned delay before the next try (on_failure backoff)
    watch: Watch
    verdict: Verdict | None = None


@dataclass
class ServiceState:
    name: str
    phase: str = "normal"
    attempts: int = 0  # crash-loop tries made in this episode
    next_at: float | None = None  # monotonic time of the next try / slow retry
    restarts: list[float] = field(default_factory=list)  # monotonic times, inside the window
    healthy_since: float | None = None
    paused_by_human: bool = False
    forced_strategy: str | None = None
    degraded: dict[str, bool] | None = None  # flags before DEGRADE
    fallback: bool = False
    reason: str = ""
    busy: bool = False
    open_incident: str | None = None  # history id of the unresolved incident
    # failure signature -> monotonic time a human was last alerted for it
    escalated: dict[str, float] = field(default_factory=dict)
    # a failed crash-loop try led to isolation (was, message, attempt): kept stopped until the
    # isolation the diff plans for it is done (or a human rejects it)
    isolate_due: dict[str, Any] | None = None
    trying: Trying | None = None  # a crash-loop try in flight (not persisted: one restarts)

    def count_restart(self, now: float, window: float) -> int:
        """Add a restart at ``now`` and return the restarts inside the window."""
        self.restarts.append(now)
        return self.recent(now, window)

    def recent(self, now: float, window: float) -> int:
        self.restarts = [t for t in self.restarts if now - t <= window]
        return len(self.restarts)

    def as_dict(self, clock: Clock) -> dict[str, Any]:
        now_m, now_w = clock.monotonic(), clock.now()
        return {"service": self.name, "phase": self.phase, "attempts": self.attempts,
                "next_attempt_at": iso(now_w + (self.next_at - now_m))
                if self.next_at is not None else None,
                "recent_restarts": len(self.restarts), "paused_by_human": self.paused_by_human,
                "forced_strategy": self.forced_strategy, "degraded": self.degraded is not None,
                "fallback_active": self.fallback, "reason": self.reason, "busy": self.busy,
                "open_incident": self.open_incident,
                "isolation_due": self.isolate_due is not None,
                "trying": None if self.trying is None else self.trying.attempt}


class StateStore:
    """Loads and saves ServiceState rows (monotonic deadlines stored as wall-clock times)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def load(self) -> dict[str, ServiceState]:
        out = {}
        now_m, now_w = self.clock.monotonic(), self.clock.now()
        for r in self.store.query("SELECT * FROM healing_service_state"):
            out[r["service"]] = ServiceState(
                r["service"], r["phase"], r["attempts"],
                None if r["next_at"] is None else now_m + (r["next_at"] - now_w),
                paused_by_human=bool(r["paused_by_human"]), forced_strategy=r["forced_strategy"],
                degraded=json.loads(r["degraded"]) if r["degraded"] else None,
                fallback=bool(r["fallback"]), reason=r["reason"] or "",
                isolate_due=json.loads(r["isolate_due"]) if r["isolate_due"] else None)
        return out

    def delete(self, name: str) -> None:
        self.store.execute("DELETE FROM healing_service_state WHERE service=?", (name,))

    def save(self, st: ServiceState) -> None:
        now_m, now_w = self.clock.monotonic(), self.clock.now()
        self.store.execute(
            "INSERT OR REPLACE INTO healing_service_state(service, phase, attempts, next_at, "
            "paused_by_human, forced_strategy, degraded, fallback, reason, updated_at, "
            "isolate_due) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (st.name, st.phase, st.attempts,
             None if st.next_at is None else now_w + (st.next_at - now_m),
             int(st.paused_by_human), st.forced_strategy,
             json.dumps(st.degraded) if st.degraded is not None else None, int(st.fallback),
             st.reason, now_w,
             json.dumps(st.isolate_due) if st.isolate_due is not None else None))
