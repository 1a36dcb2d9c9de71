"""The central Alertmanager: group by alert and host, one route (and receiver) per host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autonomous.fleet.hosts import FleetHost

__all__ = ["alertmanager_config"]


def alertmanager_config(hosts: Sequence[FleetHost], *, default_url: str | None = None,
                        group_wait_s: float = 30, group_interval_s: float = 300,
                        repeat_interval_s: float = 14400) -> dict[str, Any]:
    """``alertmanager.yml``. Each host's alerts go to its own receiver (its webhook URL, or
    the default one); alerts without a ``host`` label (none should exist) go to ``default``.
    A host's critical alerts inhibit its warnings for the same service."""
    def receiver(name: str, url: str | None) -> dict[str, Any]:
        r: dict[str, Any] = {"name": name}
        if url:
            r["webhook_configs"] = [{"url": url, "send_resolved": True}]
        return r

    return {
        "route": {
            "receiver": "default", "group_by": ["alertname", "host"],
            "group_wait": f"{int(group_wait_s)}s", "group_interval": f"{int(group_interval_s)}s",
            "repeat_interval": f"{int(repeat_interval_s)}s",
            "routes": [{"receiver": f"host-{h.name}", "matchers": [f'host="{h.name}"'],
                        "continue": False} for h in hosts],
        },
        "receivers": [receiver("default", default_url)]
        + [receiver(f"host-{h.name}", h.receiver_url or default_url) for h in hosts],
        "inhibit_rules": [{"source_matchers": ['severity="critical"'],
                           "target_matchers": ['severity="warning"'],
                           "equal": ["host", "service"]}],
    }
