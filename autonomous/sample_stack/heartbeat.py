"""The sample NEXUS's heartbeat: the embedded agent (``autonomous.self_healing.heartbeat_agent``)
in a thread, started when the process was launched by an operator (``ATLAS_AUTONOMOUS_URL``
and a token in its env) and the service declares the ``heartbeat`` feature. Imported after the
socket listens, so a plain start stays fast."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autonomous.sample_stack.server import Service
    from autonomous.self_healing.heartbeat_agent import HeartbeatAgent

__all__ = ["process_metrics", "start"]


def process_metrics(svc: Service) -> dict[str, float]:
    """What the process measures about itself (only what it can: RSS where /proc exists)."""
    out = {"uptime_s": svc.uptime_s(), "inflight": float(svc.inflight()),
           "threads": float(threading.active_count()), "beats_served": float(svc.heartbeats)}
    try:
        with open("/proc/self/statm") as f:
            # MiB, as every ``_mb`` of the project (exported to Prometheus in bytes)
            out["rss_mb"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        pass  # not measurable here: left out, not made up
    return out


def start(svc: Service, port: int, stop: threading.Event) -> HeartbeatAgent | None:
    """The agent beating in a daemon thread until ``stop``; None when not asked for."""
    if not svc.features.enabled("heartbeat"):
        return None
    from autonomous.self_healing.heartbeat_agent import HeartbeatAgent

    agent = HeartbeatAgent.from_env(svc.name, f"http://127.0.0.1:{port}",
                                    metrics=lambda: process_metrics(svc))
    if agent is None:
        return None
    threading.Thread(target=agent.run, args=(stop,), name="heartbeat", daemon=True).start()
    return agent
