"""The alert outbox: planned notices delivered in order per receiver, with retries.

``AlertManager`` plans notices into ``alert_notifications`` in the same transaction that marks
the alerts notified; ``Outbox.dispatch`` delivers the due rows through the channels. A failing
receiver is retried with the one backoff helper (policy ``telemetry.alerting.notify_backoff``)
and its later rows wait behind it, so nothing is dropped or reordered; after the retry cap a
row is ``failed`` with its last error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from autonomous.core.backoff import Backoff, BackoffSpec
from autonomous.core.clock import Clock
from autonomous.resources.policy.telemetry import AlertingPolicy
from autonomous.store.db import Store
from autonomous.telemetry.alert_channels import Channel

__all__ = ["Outbox"]

log = logging.getLogger("atlas.telemetry.alerts")


class Outbox:
    """Delivers ``alert_notifications`` rows through ``channels`` (name → channel)."""

    def __init__(self, store: Store, clock: Clock, channels: dict[str, Channel],
                 alerting: Callable[[], AlertingPolicy]) -> None:
        self.store = store
        self.clock = clock
        self.channels = channels
        self.alerting = alerting
        self._dispatching = asyncio.Lock()

    async def dispatch(self, now: float | None = None) -> dict[str, int]:
        """Deliver due outbox rows, in order per receiver; a failing receiver is retried with
        backoff and its later rows wait behind it (nothing is dropped or reordered)."""
        async with self._dispatching:
            pol = self.alerting()
            now = self.clock.now() if now is None else now
            rows = self.store.query("SELECT * FROM alert_notifications WHERE state='pending' "
                                    "ORDER BY id")
            per: dict[str, list[Any]] = {}
            for r in rows:
                per.setdefault(r["receiver"], []).append(r)
            results = await asyncio.gather(*(self._deliver(pol, name, rs, now)
                                             for name, rs in per.items()))
        out = {"sent": 0, "failed": 0, "waiting": 0}
        for res in results:
            for k, v in res.items():
                out[k] += v
        return out

    async def _deliver(self, pol: AlertingPolicy, receiver: str, rows: list[Any], now: float
                       ) -> dict[str, int]:
        out = {"sent": 0, "failed": 0, "waiting": 0}
        channel = self.channels.get(receiver)
        for i, r in enumerate(rows):
            if channel is None:
                self._mark(r["id"], "failed", r["attempts"], now, now,
                           f"receiver {receiver!r} is not configured")
                out["failed"] += 1
                continue
            if r["next_attempt_at"] > now:
                out["waiting"] += len(rows) - i
                break
            try:
                await channel.send(json.loads(r["payload"]), pol.notify_timeout_seconds)
            except Exception as exc:  # noqa: BLE001 - every failure is retried or recorded
                out[self._retry(pol, r, now, str(exc))] += 1
                out["waiting"] += len(rows) - i - 1
                break
            self._mark(r["id"], "sent", r["attempts"] + 1, now, now, None, delivered=True)
            out["sent"] += 1
        return out

    def _retry(self, pol: AlertingPolicy, r: Any, now: float, error: str) -> str:
        spec = BackoffSpec.from_policy(pol.notify_backoff.model_dump())
        attempts = r["attempts"] + 1
        if spec.max_retries is not None and attempts >= spec.max_retries:
            self._mark(r["id"], "failed", attempts, now, now, error)
            log.error("notice %s to %s failed for good: %s", r["id"], r["receiver"], error)
            return "failed"
        delay = Backoff(spec).delay(attempts)
        self._mark(r["id"], "pending", attempts, now + delay, now, error)
        return "waiting"

    def _mark(self, nid: int, state: str, attempts: int, next_at: float, now: float,
              error: str | None, delivered: bool = False) -> None:
        self.store.execute("UPDATE alert_notifications SET state=?, attempts=?, "
                           "next_attempt_at=?, last_error=?, delivered_at=? WHERE id=?",
                           (state, attempts, next_at, error, now if delivered else None, nid))

    def next_due(self) -> float | None:
        """When the next outbox row is due (for the dispatcher's sleep)."""
        row = self.store.query_one("SELECT MIN(next_attempt_at) FROM alert_notifications "
                                   "WHERE state='pending'")
        return None if row is None or row[0] is None else float(row[0])

    def notifications(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT * FROM alert_notifications ORDER BY id DESC LIMIT ?",
                                (limit,))
        return [{**dict(r), "payload": json.loads(r["payload"]),
                 "alert_ids": json.loads(r["alert_ids"])} for r in rows]

