"""A channel that pushes alerts to a (central) Prometheus Alertmanager over its v2 API.

The webhook channel sends the Alertmanager *webhook* format, which is what Alertmanager sends
to its receivers. To feed a central Alertmanager that watches a fleet of hosts, each host's
operator instead POSTs its alerts to ``<url>/api/v2/alerts``, the endpoint Prometheus itself
uses: one item per alert with labels (the host's static ``labels`` added, e.g. ``host``),
string annotations, ``startsAt`` and, for a resolved alert, ``endsAt``. Alertmanager then
groups, routes (per host), silences and inhibits across the whole fleet.

A firing alert carries no ``endsAt``: Alertmanager keeps it firing for its
``resolve_timeout`` after the last push, and the operator's outbox re-sends it on every
repeat, so an operator that dies leaves its alerts to expire instead of firing forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from autonomous.core.errors import TemporaryError
from autonomous.telemetry.alert_channels import Channel

__all__ = ["AlertmanagerChannel", "alertmanager_items"]


def alertmanager_items(payload: Mapping[str, Any], labels: Mapping[str, str]
                       ) -> list[dict[str, Any]]:
    """The v2 ``postableAlerts`` body for one notice payload (webhook-format alerts)."""
    items: list[dict[str, Any]] = []
    for a in payload["alerts"]:
        item_labels = {str(k): str(v) for k, v in a["labels"].items()}
        item_labels.update(labels)
        annotations = {str(k): str(v) for k, v in a["annotations"].items()
                       if v is not None and v is not False}
        item: dict[str, Any] = {"labels": item_labels, "annotations": annotations,
                                "startsAt": a["startsAt"], "generatorURL": a["generatorURL"]}
        if a["status"] == "resolved":
            item["endsAt"] = a["endsAt"]
        items.append(item)
    return items


class AlertmanagerChannel(Channel):
    """POSTs to ``<url>/api/v2/alerts``; anything but a 2xx is a failed attempt (retried)."""

    type = "alertmanager"

    def __init__(self, name: str, url: str, labels: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.labels = dict(labels or {})
        self.client = client

    async def send(self, payload: dict[str, Any], timeout: float) -> None:
        body = alertmanager_items(payload, self.labels)
        try:
            if self.client is not None:
                r = await self.client.post(self.url, json=body, timeout=timeout)
            else:
                async with httpx.AsyncClient(trust_env=False) as client:
                    r = await client.post(self.url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"alertmanager {self.name} ({self.url}): "
                                 f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= r.status_code < 300:
            raise TemporaryError(f"alertmanager {self.name} ({self.url}) answered "
                                 f"{r.status_code}: {r.text[:200]}")
